"""``mqtt-kafka-sync``: the one command line of the project."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mqtt_kafka_sync.errors import ConfigError, SyncError

if TYPE_CHECKING:
    from mqtt_kafka_sync.telemetry.settings import TelemetrySettings

logger = logging.getLogger(__name__)


def build_parser(*, everything: bool = True) -> argparse.ArgumentParser:
    """The command line; ``everything=False``: only ``run`` and ``validate`` (see :func:`_runs`)."""
    parser = argparse.ArgumentParser(prog="mqtt-kafka-sync", description=__doc__)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default WARNING: quiet while all is well)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the connectors of the given config files until SIGINT/SIGTERM")
    run.add_argument("configs", nargs="+", metavar="CONFIG", help="connector config (.json or .properties)")
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to wait at shutdown for Kafka to confirm in-flight messages (default 30)",
    )
    run.add_argument(
        "--status-file",
        type=Path,
        metavar="PATH",
        help="write per-task counters and liveness as JSON to PATH every second",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=9464,
        metavar="PORT",
        help="serve /metrics (Prometheus), /healthz and /readyz on PORT (default 9464; 0: off)",
    )
    run.add_argument(
        "--metrics-host",
        default="0.0.0.0",
        metavar="HOST",
        help="address the metrics port listens on (default 0.0.0.0; 127.0.0.1 for this machine only)",
    )
    run.add_argument(
        "--liveness-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="/healthz fails when a task's network loop has not turned for this long (default 60), so an "
        "orchestrator restarts a wedged process",
    )
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check config files without connecting; lists every problem")
    validate.add_argument("configs", nargs="+", metavar="CONFIG")
    validate.set_defaults(func=cmd_validate)
    if not everything:
        return parser
    from mqtt_kafka_sync.cli import demo, lag, tail  # noqa: PLC0415 - subcommand modules register themselves
    from mqtt_kafka_sync.cli import replay as replay_commands  # noqa: PLC0415
    from mqtt_kafka_sync.devstack import commands as stack_commands  # noqa: PLC0415
    from mqtt_kafka_sync.sim import commands as sim_commands  # noqa: PLC0415

    stack_commands.register(sub)
    sim_commands.register(sub)
    demo.register(sub)
    tail.register(sub)
    replay_commands.register(sub)
    lag.register(sub)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from mqtt_kafka_sync.config.advice import config_warnings  # noqa: PLC0415
    from mqtt_kafka_sync.config.loader import check_files, load_connectors  # noqa: PLC0415

    problems = check_files(args.configs, os.environ)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    warnings = config_warnings(load_connectors(args.configs, os.environ))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(args.configs)} file(s) OK" + (f", {len(warnings)} warning(s)" if warnings else ""))
    return 0


def telemetry_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> TelemetrySettings | None:
    """``--metrics-*`` and the standard OpenTelemetry variables: the one place they are read.

    ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is used as given; ``OTEL_EXPORTER_OTLP_ENDPOINT`` gets
    ``/v1/metrics`` appended (the OTLP/HTTP convention); ``OTEL_METRIC_EXPORT_INTERVAL`` is in ms.
    """
    from mqtt_kafka_sync.telemetry.settings import TelemetrySettings  # noqa: PLC0415

    endpoint = environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or None
    if endpoint is None and (base := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        endpoint = base.rstrip("/") + "/v1/metrics"
    if not args.metrics_port and endpoint is None:
        return None
    interval = environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")
    try:
        interval_s = float(interval) / 1000
    except ValueError:
        raise SyncError(f"OTEL_METRIC_EXPORT_INTERVAL={interval!r} is not a number of milliseconds") from None
    return TelemetrySettings(
        host=args.metrics_host,
        port=args.metrics_port,
        otlp_endpoint=endpoint,
        otlp_interval_s=interval_s,
        liveness_timeout_s=args.liveness_timeout,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from mqtt_kafka_sync.runtime.checked_config import load_checked  # noqa: PLC0415
    from mqtt_kafka_sync.runtime.supervisor import Supervisor  # noqa: PLC0415

    configs, warnings = load_checked(args.configs, os.environ)  # in a child: the supervisor stays small
    for warning in warnings:
        logger.warning("%s", warning)
    supervisor = Supervisor(
        configs,
        drain_timeout=args.drain_timeout,
        log_level=logging.getLogger().level,
        telemetry=telemetry_settings(args, os.environ),
    )
    status_file: Path | None = args.status_file
    if status_file is None:
        return supervisor.run()
    code = supervisor.run(on_tick=lambda sup: sup.write_status(status_file))
    supervisor.write_status(status_file)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    from mqtt_kafka_sync.logs import configure_logging, dump_stacks_on_sigusr1  # noqa: PLC0415

    argv = sys.argv[1:] if argv is None else argv
    args = (build_parser(everything=False) if _runs(argv) else build_parser()).parse_args(argv)
    configure_logging(getattr(logging, args.log_level))
    dump_stacks_on_sigusr1()
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # A command's Kafka client, where no caller put it in words. Looked up, not imported: a
        # command that never loaded confluent-kafka (run's supervisor) cannot have raised its error.
        kafka = sys.modules.get("confluent_kafka")
        if kafka is None or not isinstance(exc, kafka.KafkaException):
            raise
        from mqtt_kafka_sync.cli.kafka_options import unreachable  # noqa: PLC0415

        print(f"error: Kafka: {unreachable(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _runs(argv: Sequence[str]) -> bool:
    """Whether ``argv`` names ``run``: its parser then leaves out the other commands, whose modules
    load Kafka, MQTT and Avro libraries the supervisor would carry for the whole run."""
    args = list(argv)
    while args and args[0].startswith("--log-level"):
        args = args[2:] if args[0] == "--log-level" else args[1:]
    return bool(args) and args[0] == "run"


if __name__ == "__main__":
    sys.exit(main())
