"""``--command-config FILE`` of ``replay``, ``tail``, ``lag`` and ``verify``: parsed, loaded into the
command's Kafka connection, refused with the problems named; a Kafka client's failure is one calm
line, never a traceback."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from mqtt_kafka_sync.cli import main as cli_main
from mqtt_kafka_sync.cli.kafka_options import kafka_of, unreachable
from mqtt_kafka_sync.cli.replay import _request
from mqtt_kafka_sync.secret import Secret

PROPERTIES = (
    "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=tool\nsasl.password=pw-5678\n"
)


@pytest.fixture
def properties(tmp_path: Path) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(PROPERTIES)
    return path


def _parse(*argv: str) -> argparse.Namespace:
    return cli_main.build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ("tail", "t", "--bootstrap", "k:9094"),
        ("lag", "--group", "g", "--bootstrap", "k:9094"),
        ("replay", "--source", "s", "--target", "d", "--bootstrap", "k:9094"),
        ("verify", "--topic", "t", "--bootstrap", "k:9094"),
    ],
)
def test_every_kafka_command_takes_command_config(argv: tuple[str, ...], properties: Path) -> None:
    args = _parse(*argv, "--command-config", str(properties))
    assert args.command_config == properties
    assert _parse(*argv).command_config is None


def test_the_file_becomes_the_commands_connection(properties: Path) -> None:
    kafka = kafka_of(_parse("tail", "t", "--bootstrap", "k:9094", "--command-config", str(properties)))
    assert kafka.bootstrap_servers == "k:9094"
    assert kafka.common["sasl.username"] == "tool" and isinstance(kafka.common["sasl.password"], Secret)
    assert kafka_of(_parse("tail", "t", "--bootstrap", "k:9094")).common == {}


def test_replay_hands_the_settings_to_its_request(properties: Path) -> None:
    args = _parse("replay", "--source", "s", "--target", "d", "--command-config", str(properties))
    request = _request(args)
    assert request.command_config["security.protocol"] == "SASL_SSL"
    assert "pw-5678" not in repr(request)
    assert _request(_parse("replay", "--source", "s", "--target", "d")).command_config == {}


def test_a_bad_file_is_refused_with_its_problems_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.properties"
    bad.write_text("bootstrap.servers=x:1\nsasl.password=pw-5678\nno.such.thing=1\n")
    assert cli_main.main(["tail", "t", "--command-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bootstrap.servers" in err and "no.such.thing" in err
    assert "pw-5678" not in err and "Traceback" not in err


def test_a_kafka_failure_is_one_calm_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(args: argparse.Namespace) -> int:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    monkeypatch.setattr(
        parser, "parse_args", lambda argv: argparse.Namespace(func=fails, log_level="WARNING")
    )
    assert cli_main.main(["tail", "t"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Kafka: Failed to get metadata") and "--command-config" in err
    assert len(err.splitlines()) == 1


def test_only_a_connection_failure_suggests_command_config() -> None:
    assert "--command-config" in unreachable(KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out")))
    refused = unreachable(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not allowed")))
    assert refused == "not allowed"
