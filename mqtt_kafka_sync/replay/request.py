"""What ``mqtt-kafka-sync replay`` was asked to do, as one typed object, and its checks.

The command line turns its options into a :class:`ReplayRequest`; everything here works without a
broker, so a bad combination of options is refused before anything connects. Messages name the
command's options, since that is how the user gave them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mqtt_kafka_sync.config import throttle as defaults
from mqtt_kafka_sync.config.model import RelayConnectorConfig
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.mqtt_target import ExpiryFrom
from mqtt_kafka_sync.replay.plan import RangeSpec
from mqtt_kafka_sync.throttle.controller import ControllerSettings, Mode


@dataclass(frozen=True)
class ThrottleRequest:
    """``--throttle-group`` and the rest: pacing by the named groups' lag, or a fixed rate."""

    groups: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    """Topics whose lag counts; empty: the target topic."""
    lag_high: int | None = None
    lag_low: int | None = None
    rate_min: float = defaults.REPLAY_RATE_MIN
    rate_max: float | None = None
    """Without groups: a fixed rate."""
    step_max: float | None = None
    interval: float = defaults.LAG_INTERVAL_S
    mode: Mode = defaults.MODE

    def controller_settings(self) -> ControllerSettings | None:
        """The lag controller's settings; None without groups. Raises :class:`ReplayError`."""
        if not self.groups:
            for option, value in (
                ("lag-high", self.lag_high),
                ("lag-low", self.lag_low),
                ("step-max", self.step_max),
            ):
                if value is not None:
                    raise ReplayError(f"--{option} needs --throttle-group")
            if self.topics:
                raise ReplayError("--throttle-topic needs --throttle-group")
            return None
        if self.lag_high is None:
            raise ReplayError("--throttle-group needs --lag-high, the lag (records) to stay under")
        high, step = self.lag_high, self.step_max
        try:
            return ControllerSettings(
                lag_high=high,
                lag_low=defaults.default_lag_low(high) if self.lag_low is None else self.lag_low,
                rate_min=self.rate_min,
                rate_max=self.rate_max if self.rate_max is not None else defaults.RATE_MAX,
                step=step if step is not None else defaults.default_step(high, self.interval),
                interval=self.interval,
                mode=self.mode,
            )
        except ValueError as exc:
            raise ReplayError(f"throttle settings: {exc}") from None

    def watched_topics(self, target: str) -> frozenset[str]:
        """The topics whose lag the throttle reads: ``--throttle-topic``, else the target topic."""
        return frozenset(self.topics or (target,))


@dataclass(frozen=True)
class ReplayRequest:
    """One replay: a range of ``source`` into the Kafka topic ``target`` or, through the command relay
    connector in the file ``to_mqtt``, into MQTT (exactly one of the two)."""

    source: str
    target: str | None = None
    to_mqtt: Path | None = None
    bootstrap: str | None = None
    """Kafka of the source; None: the connector's with ``to_mqtt``, else ``default_bootstrap``."""
    default_bootstrap: str = ""
    target_bootstrap: str | None = None
    """Kafka of the target topic; None: that of the source."""
    command_config: Mapping[str, str] = field(default_factory=dict, repr=False)
    """``--command-config``: librdkafka settings (security) for every Kafka client of the replay; with
    ``to_mqtt`` over the connector file's ``kafka.<property>`` settings."""
    partitions: tuple[int, ...] = ()
    from_offsets: tuple[str, ...] = ()
    to_offsets: tuple[str, ...] = ()
    from_time: str | None = None
    to_time: str | None = None
    checkpoint: Path | None = None
    """None: :func:`default_checkpoint`."""
    dry_run: bool = False
    create_target: bool = False
    expiry_from: ExpiryFrom | None = None
    stall_timeout: float | None = None
    throttle: ThrottleRequest = field(default_factory=ThrottleRequest)
    progress_interval: float = 2.0

    def check_target_options(self, relay: RelayConnectorConfig | None) -> None:
        """Options that only make sense with the other kind of target; raises :class:`ReplayError`."""
        if relay is None:
            for option, value in (("expiry-from", self.expiry_from), ("stall-timeout", self.stall_timeout)):
                if value is not None:
                    raise ReplayError(f"--{option} is for --to-mqtt")
            return
        if self.target_bootstrap is not None:
            raise ReplayError(
                "--target-bootstrap is for --target; with --to-mqtt dead letters go to the connector's "
                "kafka.bootstrap.servers"
            )
        if self.create_target:
            raise ReplayError("--create-target is for --target (a Kafka topic)")
        if self.throttle.groups and not self.throttle.topics:
            raise ReplayError(
                "with --to-mqtt, --throttle-group needs --throttle-topic: the topics whose lag the replay "
                "drives, e.g. the one the devices' answers are ingested into"
            )
        if self.stall_timeout is not None and self.stall_timeout <= 0:
            raise ReplayError("--stall-timeout must be above 0 seconds")

    def range_spec(self, relay: RelayConnectorConfig | None) -> RangeSpec:
        """What a checkpoint is resumed for: the source, the target and the range, as given."""
        return RangeSpec(
            source=self.source,
            target=(self.target or "") if relay is None else relay.name,
            partitions=tuple(sorted(set(self.partitions))),
            from_offsets=self.from_offsets,
            to_offsets=self.to_offsets,
            from_time=self.from_time,
            to_time=self.to_time,
            target_kind="kafka" if relay is None else "mqtt",
        )


def default_checkpoint(spec: RangeSpec) -> Path:
    """``./replay-<source>-<target>.checkpoint.json``, into MQTT ``./replay-<source>-mqtt-<connector>...``."""
    if spec.target_kind == "mqtt":
        return Path(f"replay-{spec.source}-mqtt-{spec.target}.checkpoint.json")
    return Path(f"replay-{spec.source}-{spec.target}.checkpoint.json")


def spec_text(spec: RangeSpec) -> str:
    """A checkpoint's spec as the options that made it, for messages."""
    target = spec.target if spec.target_kind == "kafka" else f"MQTT via {spec.target}"
    parts = [f"{spec.source} -> {target}"]
    for name, value in (
        ("partitions", ",".join(map(str, spec.partitions))),
        ("from-offset", " ".join(spec.from_offsets)),
        ("to-offset", " ".join(spec.to_offsets)),
        ("from-time", spec.from_time or ""),
        ("to-time", spec.to_time or ""),
    ):
        if value:
            parts.append(f"--{name} {value}")
    return " ".join(parts)
