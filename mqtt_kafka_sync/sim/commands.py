"""``mqtt-kafka-sync simulate`` and ``mqtt-kafka-sync verify``: devices in, Kafka checked.

The main CLI calls :func:`register` with its subparsers; the chosen handler is ``args.func`` and
returns the exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from mqtt_kafka_sync.config.command_config import OPTION_HELP, command_connection
from mqtt_kafka_sync.config.model import MQTT_TLS_SCHEMES, MqttTls, Secret
from mqtt_kafka_sync.errors import SyncError
from mqtt_kafka_sync.mqtt.paho_client import MqttAccess
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.payload import TELEMETRY_TOPIC_TEMPLATE, device_ids
from mqtt_kafka_sync.sim.verify import verify_topic

PROGRESS_EVERY_S = 1.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` and ``verify`` commands."""
    sim = subparsers.add_parser(
        "simulate",
        help="publish numbered telemetry from simulated devices to MQTT",
        description="Each device publishes --messages JSON payloads with seq 1..n to "
        "plants/{plant}/devices/{device}/telemetry, and the command waits for every PUBACK.",
    )
    sim.add_argument(
        "--mqtt-uri", default="tcp://127.0.0.1:11883", help="broker, tcp:// or ssl:// (default %(default)s)"
    )
    _add_mqtt_access(sim)
    _add_devices(sim)
    sim.add_argument(
        "--rate", type=float, default=None, help="total messages/s, paced (default: as fast as possible)"
    )
    sim.add_argument("--qos", type=int, choices=(0, 1, 2), default=1, help="default %(default)s")
    sim.add_argument("--payload-size", type=int, default=200, help="bytes per payload (default %(default)s)")
    sim.add_argument("--clients", type=int, default=4, help="MQTT connections (default %(default)s)")
    sim.add_argument("--client-id-prefix", default=None, help="default: sim-<random>")
    sim.add_argument(
        "--user-property",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="MQTT 5 user property on every message; may be repeated",
    )
    sim.set_defaults(func=_simulate)

    verify = subparsers.add_parser(
        "verify",
        help="check that a simulate run arrived in Kafka: lost, duplicated, reordered, malformed",
        description="Reads the topic from the beginning until every (device, seq) was seen or "
        "--timeout/--idle passed; exits 1 unless nothing was lost, reordered or malformed.",
    )
    verify.add_argument("--bootstrap", default="127.0.0.1:19092", help="Kafka (default %(default)s)")
    verify.add_argument("--topic", default="telemetry", help="default %(default)s")
    _add_devices(verify)
    verify.add_argument("--timeout", type=float, default=60.0, help="seconds (default %(default)s)")
    verify.add_argument(
        "--idle", type=float, default=10.0, help="stop after this many seconds without a new record"
    )
    verify.add_argument("--allow-reorder", action="store_true", help="out-of-order records do not fail")
    verify.add_argument("--command-config", type=Path, metavar="FILE", help=OPTION_HELP)
    verify.set_defaults(func=_verify)


def _add_devices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=200, help="default %(default)s")
    parser.add_argument("--messages", type=int, default=100, help="per device (default %(default)s)")
    parser.add_argument("--plants", type=int, default=None, help="default: one per 100 devices")
    parser.add_argument(
        "--topic-template", default=TELEMETRY_TOPIC_TEMPLATE, help="MQTT topic over {plant} and {device}"
    )


def _add_mqtt_access(parser: argparse.ArgumentParser) -> None:
    """Login and TLS options; secrets only from files, so they never show in a process list."""
    group = parser.add_argument_group("MQTT login and TLS (with an ssl:// or mqtts:// --mqtt-uri)")
    group.add_argument("--mqtt-username", default=None, help="user name (every client logs in as it)")
    group.add_argument("--mqtt-password-file", type=Path, default=None, help="file holding the password")
    group.add_argument(
        "--mqtt-ca", type=Path, default=None, help="PEM CA bundle (default: system trust store)"
    )
    group.add_argument("--mqtt-cert", type=Path, default=None, help="client certificate (PEM) for mutual TLS")
    group.add_argument("--mqtt-key", type=Path, default=None, help="its private key (PEM)")
    group.add_argument(
        "--mqtt-key-password-file", type=Path, default=None, help="file holding the key's passphrase"
    )
    group.add_argument(
        "--mqtt-insecure-hostname",
        action="store_true",
        help="accept a broker certificate that does not name the host (still from a trusted CA)",
    )


def _mqtt_access(args: argparse.Namespace) -> MqttAccess:
    tls_given = args.mqtt_ca or args.mqtt_cert or args.mqtt_key or args.mqtt_key_password_file
    tls_uri = urlsplit(args.mqtt_uri).scheme in MQTT_TLS_SCHEMES
    if (tls_given or args.mqtt_insecure_hostname) and not tls_uri:
        raise SyncError("--mqtt-ca, --mqtt-cert, --mqtt-key, ... need an ssl:// or mqtts:// --mqtt-uri")
    tls = None
    if tls_uri:
        password = _read_secret(args.mqtt_key_password_file, "--mqtt-key-password-file")
        tls = MqttTls(
            args.mqtt_ca,
            args.mqtt_cert,
            args.mqtt_key,
            Secret(password) if password is not None else None,
            check_hostname=not args.mqtt_insecure_hostname,
        )
    return MqttAccess(args.mqtt_username, _read_secret(args.mqtt_password_file, "--mqtt-password-file"), tls)


def _read_secret(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise SyncError(f"{option}: cannot read {path}: {exc.strerror}") from None


def _mqtt_address(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    if parts.scheme not in ("tcp", "mqtt", *MQTT_TLS_SCHEMES) or not parts.hostname:
        raise SyncError(f"--mqtt-uri must look like tcp://host:port or ssl://host:port, got {uri!r}")
    return parts.hostname, parts.port or (8883 if parts.scheme in MQTT_TLS_SCHEMES else 1883)


def _user_properties(values: list[str]) -> dict[str, str]:
    props = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise SyncError(f"--user-property must look like NAME=VALUE, got {value!r}")
        props[name] = text
    return props


def _simulate(args: argparse.Namespace) -> int:
    host, port = _mqtt_address(args.mqtt_uri)
    simulator = DeviceSimulator(
        host,
        port,
        args.devices,
        args.messages,
        qos=args.qos,
        rate=args.rate,
        payload_size=args.payload_size,
        clients=args.clients,
        topic_template=args.topic_template,
        client_id_prefix=args.client_id_prefix,
        user_properties=_user_properties(args.user_property),
        plants=args.plants,
        access=_mqtt_access(args),
    )
    total = args.devices * args.messages
    simulator.start()
    try:
        while (result := simulator.wait(PROGRESS_EVERY_S)) is None:
            print(f"sent {simulator.sent:,}/{total:,}  acked {simulator.acked:,}", file=sys.stderr)
    except KeyboardInterrupt:
        result = simulator.stop()
    print(result.summary())
    for error in result.errors:
        print(f"  {error}", file=sys.stderr)
    return 0 if result.ok else 1


def _verify(args: argparse.Namespace) -> int:
    expected = dict.fromkeys(device_ids(args.devices, args.plants), args.messages)
    began = time.monotonic()
    report = verify_topic(
        command_connection(args.bootstrap, args.command_config, os.environ),
        args.topic,
        expected,
        timeout_s=args.timeout,
        idle_s=args.idle,
        topic_template=args.topic_template,
    )
    print(f"{report.summary()} elapsed={time.monotonic() - began:.1f}s")
    for line in report.details():
        print(f"  {line}")
    ok = report.ok_allowing_reorder if args.allow_reorder else report.ok
    return 0 if ok else 1
