"""``mqtt-kafka-sync stack up|down|status``: the local Kafka + Mosquitto, run in the background.

The main CLI calls :func:`register` with its subparsers; the chosen handler is ``args.func`` and
returns the exit code. ``python -m mqtt_kafka_sync.devstack.commands stack up`` works on its own.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mqtt_kafka_sync.devstack.stack import LocalStack, default_secure_root, shared_libs
from mqtt_kafka_sync.errors import StackError

EXIT_NOT_RUNNING = 3  # as `systemctl status`: the stack is not (fully) up


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stack`` command with ``up``, ``down`` and ``status``."""
    stack = subparsers.add_parser(
        "stack",
        help="run a local Kafka and Mosquitto for development (no Docker)",
        description="A single-node Kafka (KRaft) and a Mosquitto broker, installed on first use "
        "(Kafka jars from Maven Central, Mosquitto from apt) and run in the background.",
    )
    actions = stack.add_subparsers(dest="stack_action", required=True, metavar="{up,down,status}")
    for name, handler, text in (
        ("up", _up, "install if needed, start in the background, wait until ready, print the endpoints"),
        ("down", _down, "stop both brokers (their data stays in the stack dir)"),
        ("status", _status, "show whether each broker runs and answers"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--dir", type=Path, default=None, help="stack dir (default: <repo>/.stack)")
        action.add_argument("--kafka-port", type=int, default=None, help="Kafka listener (default 19092)")
        action.add_argument(
            "--controller-port", type=int, default=None, help="KRaft controller listener (default 19093)"
        )
        action.add_argument("--mqtt-port", type=int, default=None, help="MQTT listener (default 11883)")
        action.add_argument(
            "--secure",
            action="store_true",
            help="the secured stack (own dir and ports): Kafka SASL_SSL + SCRAM-SHA-512, MQTT over "
            "mutual TLS with password and ACL, throwaway CA",
        )
        action.add_argument(
            "--kafka-sasl-port",
            type=int,
            default=None,
            help="with --secure: SASL_SSL listener (default 29094)",
        )
        action.add_argument(
            "--mqtts-port", type=int, default=None, help="with --secure: MQTT TLS listener (default 28883)"
        )
        if name == "up":
            action.add_argument(
                "--timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)"
            )
        action.set_defaults(func=handler)


def _stack(args: argparse.Namespace) -> LocalStack:
    if not args.secure:
        return LocalStack(
            args.dir,
            kafka_port=args.kafka_port,
            controller_port=args.controller_port,
            mqtt_port=args.mqtt_port,
        )
    return LocalStack(
        args.dir or default_secure_root(),
        kafka_port=args.kafka_port,
        controller_port=args.controller_port,
        mqtt_port=args.mqtt_port,
        libs_dir=shared_libs(),
        secure=True,
        kafka_sasl_port=args.kafka_sasl_port,
        mqtts_port=args.mqtts_port,
    )


def _up(args: argparse.Namespace) -> int:
    try:
        stack = _stack(args)
        stack.check_ports()
        if not stack.kafka.is_installed():
            print("installing the Kafka jars with mvn (first run only)...", file=sys.stderr)
        began = time.monotonic()
        stack.up(timeout=args.timeout)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"KAFKA_BOOTSTRAP_SERVERS={stack.kafka_bootstrap}")
    print(f"MQTT_SERVER_URI={stack.mqtt_uri}")
    if args.secure:
        _print_secure(stack)
    print(
        f"# up in {time.monotonic() - began:.1f}s; logs and data in {stack.root}; "
        f"stop with: mqtt-kafka-sync stack down{' --secure' if args.secure else ''}",
        file=sys.stderr,
    )
    return 0


def _print_secure(stack: LocalStack) -> None:
    """The secured endpoints as the tests' ``secure`` fixture reads them, then where the files are."""
    secure = stack.secure_endpoints
    certs = secure.material.certs
    print(f"SECURE_KAFKA_BOOTSTRAP_SERVERS={secure.kafka_bootstrap}")
    print(f"SECURE_MQTT_SERVER_URI={secure.mqtt_uri}")
    print(f"SECURE_MATERIAL_DIR={secure.material.root}")
    print(f"# CA: {certs.ca}", file=sys.stderr)
    for name in ("bridge", "device"):
        print(f"# {name} client: {certs.client_cert(name)} {certs.client_key(name)}", file=sys.stderr)
    print(
        f"# encrypted bridge key: {certs.bridge_encrypted_key} (passphrase in {certs.password_file})",
        file=sys.stderr,
    )
    print(f"# users and passwords: {secure.material.users_file}", file=sys.stderr)
    print(f"# librdkafka settings for the bridge: {stack.kafka_properties}", file=sys.stderr)


def _down(args: argparse.Namespace) -> int:
    try:
        _stack(args).down()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        status = _stack(args).status()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"stack dir  {status.root}")
    for component in status.components:
        print(component)
    return 0 if status.healthy else EXIT_NOT_RUNNING


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mqtt-kafka-sync")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
