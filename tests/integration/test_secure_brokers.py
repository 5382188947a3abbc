"""The secured brokers enforce what they claim, seen with plain paho and confluent-kafka clients.

Mosquitto (TLS listener only): a client certificate from our CA, a password and the ACL are all
required. What Mosquitto 2.0.11 really does, asserted here: a refused certificate surfaces after
the TLS 1.3 handshake, as the connection closing on the first read; a wrong password is CONNACK
0x87 (Not authorized, not 0x86); a subscription outside the ACL is *granted* (SUBACK 0x01) and its
messages are simply not delivered; a QoS 1 publish outside the ACL gets PUBACK 0x87.
Kafka: SASL_SSL with SCRAM-SHA-512, the CA from the fixture, no client certificate.
"""

from __future__ import annotations

import queue
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.devstack.secure import BRIDGE_USER, DEVICE_USER, SecureEndpoints, client_tls
from tests.conftest import Brokers

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = 0x87
OWN = f"plants/p1/devices/{DEVICE_USER}"
OTHER = "plants/p1/devices/device-2"


class Client:
    """A paho MQTT 5 client over TLS that queues its CONNACK, SUBACK, PUBACK codes and messages."""

    def __init__(self, secure: SecureEndpoints, cert: str, user: str, password: str | None = None) -> None:
        certs = secure.material.certs
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.held: list[tuple[str, Any]] = []
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{time.monotonic_ns()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if cert == "bridge-encrypted":
            keyfile, keypass = certs.bridge_encrypted_key, certs.key_password
            cert = "bridge"
        else:
            keyfile, keypass = certs.client_key(cert), None
        self.paho.tls_set(str(certs.ca), str(certs.client_cert(cert)), str(keyfile), keyfile_password=keypass)
        self.paho.username_pw_set(user, secure.material.mqtt_users[user] if password is None else password)
        self.paho.on_connect = lambda _c, _u, _f, code, _p: self.events.put(("connack", code))
        self.paho.on_subscribe = lambda _c, _u, _m, codes, _p: self.events.put(("suback", codes[0]))
        self.paho.on_publish = lambda _c, _u, _m, code, _p: self.events.put(("puback", code))
        self.paho.on_message = lambda _c, _u, msg: self.events.put(("message", (msg.topic, msg.payload)))
        host, port = secure.mqtt_address
        self.paho.connect(host, port)
        self.paho.loop_start()

    def next(self, kind: str, timeout: float = 10.0) -> Any:
        """The oldest event of ``kind``; others stay queued (a message may come before its PUBACK)."""
        for index, (got, value) in enumerate(self.held):
            if got == kind:
                del self.held[index]
                return value
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got, value = self.events.get(timeout=left)
            except queue.Empty:
                break
            if got == kind:
                return value
            self.held.append((got, value))
        raise AssertionError(f"no {kind} within {timeout:.0f}s")

    def messages(self) -> list[Any]:
        """Messages received and not yet taken by :meth:`next`."""
        while not self.events.empty():
            self.held.append(self.events.get())
        return [value for got, value in self.held if got == "message"]

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def bridge(secure: SecureEndpoints) -> Any:
    client = Client(secure, "bridge", BRIDGE_USER)
    assert client.next("connack") == 0
    yield client
    client.close()


@pytest.fixture
def device(secure: SecureEndpoints) -> Any:
    client = Client(secure, "device", DEVICE_USER)
    assert client.next("connack") == 0
    yield client
    client.close()


def subscribe(client: Client, topic: str, qos: int = 1) -> ReasonCode:
    client.paho.subscribe(topic, qos)
    code: ReasonCode = client.next("suback")
    return code


def publish(client: Client, topic: str, payload: bytes) -> ReasonCode:
    client.paho.publish(topic, payload, qos=1)
    code: ReasonCode = client.next("puback")
    return code


def test_bridge_and_device_use_what_the_acl_allows(bridge: Client, device: Client, unique: str) -> None:
    assert subscribe(bridge, "$share/mks/plants/+/devices/+/telemetry") == 1
    assert subscribe(bridge, "mqtt-kafka-sync/members/mks/+", qos=0) == 0
    assert subscribe(device, f"{OWN}/commands") == 1
    assert publish(device, f"{OWN}/telemetry", unique.encode()) == 0
    assert bridge.next("message") == (f"{OWN}/telemetry", unique.encode())
    assert publish(bridge, f"{OWN}/commands", b"reboot") == 0
    assert device.next("message") == (f"{OWN}/commands", b"reboot")
    assert publish(bridge, f"mqtt-kafka-sync/members/mks/{unique}", b"online") == 0
    assert bridge.next("message") == (f"mqtt-kafka-sync/members/mks/{unique}", b"online")


def test_outside_the_acl_publish_is_refused_and_subscribe_delivers_nothing(
    bridge: Client, device: Client
) -> None:
    assert publish(device, f"{OTHER}/telemetry", b"spoof") == NOT_AUTHORIZED
    assert publish(bridge, f"{OWN}/telemetry", b"spoof") == NOT_AUTHORIZED
    # Mosquitto 2.0.11 grants the subscription and filters on delivery.
    assert subscribe(device, f"{OTHER}/commands") == 1
    assert subscribe(device, f"{OWN}/commands") == 1
    assert publish(bridge, f"{OTHER}/commands", b"not for you") == 0
    assert publish(bridge, f"{OWN}/commands", b"for you") == 0
    assert device.next("message") == (f"{OWN}/commands", b"for you")
    time.sleep(0.5)  # the refused delivery, had it been sent, would have come first
    assert device.messages() == []


def test_an_encrypted_client_key_with_its_passphrase_connects(secure: SecureEndpoints) -> None:
    client = Client(secure, "bridge-encrypted", BRIDGE_USER)
    try:
        assert client.next("connack") == 0
    finally:
        client.close()


def test_a_wrong_password_is_not_authorized(secure: SecureEndpoints) -> None:
    client = Client(secure, "bridge", BRIDGE_USER, password="wrong")  # noqa: S106
    try:
        assert client.next("connack") == NOT_AUTHORIZED
    finally:
        client.close()


@pytest.mark.parametrize("cert", [None, "rogue", "expired"])
def test_a_missing_foreign_or_expired_certificate_is_refused(
    secure: SecureEndpoints, cert: str | None
) -> None:
    certs = secure.material.certs
    context = ssl.create_default_context(cafile=str(certs.ca))
    if cert is not None:
        context.load_cert_chain(certs.client_cert(cert), certs.client_key(cert))
    connect = b"\x10\x10\x00\x04MQTT\x05\x02\x00\x0a\x00\x00\x03abc"  # MQTT 5 CONNECT, client id "abc"
    host, port = secure.mqtt_address
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _connect_over_tls(context, host, port, connect)


def _connect_over_tls(context: ssl.SSLContext, host: str, port: int, connect: bytes) -> None:
    """TLS 1.3 completes the handshake on the client's side before the server checks the client's
    certificate: a refusal shows as an error (or a bare close) on the first read."""
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(connect)
        if not tls.recv(4):
            raise ConnectionAbortedError("closed without a TLS alert")


def test_the_probe_context_is_accepted(secure: SecureEndpoints) -> None:
    assert client_tls(secure.material).verify_mode == ssl.CERT_REQUIRED
    assert secure.is_ready()


def _properties(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_scram_over_tls_produces_and_consumes(
    secure: SecureEndpoints, brokers: Brokers, tmp_path: Path, unique: str
) -> None:
    assert secure.kafka_bootstrap != brokers.kafka_bootstrap
    settings = _properties(secure.write_kafka_properties(tmp_path / "bridge.properties"))
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings["bootstrap.servers"] == secure.kafka_bootstrap
    producer = Producer(settings)
    producer.produce(unique, b"secret", b"k")
    assert producer.flush(30) == 0
    consumer = Consumer({**settings, "group.id": unique, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([unique])
        deadline = time.monotonic() + 30
        while (msg := consumer.poll(0.5)) is None and time.monotonic() < deadline:
            pass
        assert msg is not None and msg.error() is None and msg.value() == b"secret"
    finally:
        consumer.close()


def test_a_wrong_scram_password_is_an_authentication_error(secure: SecureEndpoints, unique: str) -> None:
    errors: list[KafkaError] = []
    producer = Producer(
        {**secure.kafka_settings(), "sasl.password": "wrong", "error_cb": errors.append, "log_level": 0}
    )
    producer.produce(unique, b"x")
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION
    producer.purge()
    producer.flush(0)


def test_librdkafka_reads_the_encrypted_key_with_ssl_key_password(secure: SecureEndpoints) -> None:
    certs = secure.material.certs
    settings = {
        **secure.kafka_settings(),
        "ssl.certificate.location": str(certs.client_cert("bridge")),
        "ssl.key.location": str(certs.bridge_encrypted_key),
        "log_level": 0,
    }
    Producer({**settings, "ssl.key.password": certs.key_password}).flush(0)
    with pytest.raises(KafkaException, match=r"ssl\.key\.location"):
        Producer({**settings, "ssl.key.password": "wrong"})
