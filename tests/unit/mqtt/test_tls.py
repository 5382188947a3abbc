"""mqtt/tls.py: the client context made from ``mqtt.ssl.*``, read again at every call, and TLS
failures put in words (a real handshake against a local TLS server with the devstack's certificates)."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_kafka_sync.config.model import MqttTls, Secret
from mqtt_kafka_sync.devstack.certs import CertSet
from mqtt_kafka_sync.mqtt import tls
from mqtt_kafka_sync.mqtt.tls import TlsFilesUnusable, TlsRefused, client_context, handshake


def test_the_context_is_tls_1_2_or_later_verifying_the_broker(certs: CertSet) -> None:
    context = client_context(MqttTls(ca_location=certs.ca))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert not client_context(MqttTls(ca_location=certs.ca, check_hostname=False)).check_hostname


def test_without_a_ca_bundle_the_system_trust_store_is_used(certs: CertSet) -> None:
    assert client_context(MqttTls()).cert_store_stats()["x509_ca"] >= 0  # loads without error


def test_files_are_read_at_every_call_so_a_rotation_is_seen(certs: CertSet, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    shutil.copy(certs.client_cert("bridge"), cert)
    shutil.copy(certs.client_key("bridge"), key)
    settings = MqttTls(certs.ca, cert, key)
    client_context(settings)
    shutil.copy(certs.client_key("device"), key)  # half-way through a rotation: the wrong key
    with pytest.raises(TlsFilesUnusable, match=r"mqtt\.ssl\.key\.location: the key does not match"):
        client_context(settings)
    shutil.copy(certs.client_cert("device"), cert)
    client_context(settings)


def test_an_encrypted_key_opens_with_its_passphrase(certs: CertSet) -> None:
    settings = MqttTls(
        certs.ca, certs.client_cert("bridge"), certs.bridge_encrypted_key, Secret(certs.key_password)
    )
    client_context(settings)
    with pytest.raises(TlsFilesUnusable, match="passphrase does not open") as caught:
        client_context(
            MqttTls(certs.ca, certs.client_cert("bridge"), certs.bridge_encrypted_key, Secret("nope-x1"))
        )
    assert "nope-x1" not in str(caught.value)


class TlsServer:
    """Accepts TLS connections with the devstack's server certificate (optionally requiring ours)."""

    def __init__(self, certs: CertSet, *, require_client: bool) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.server_cert, certs.server_key)
        if require_client:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(certs.ca)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.peer_cn: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    cert = conn.getpeercert()
                    if cert:
                        self.peer_cn += [
                            str(rdn[0][1]) for rdn in cert["subject"] if rdn[0][0] == "commonName"
                        ]
                    conn.recv(1)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server(certs: CertSet) -> Iterator[TlsServer]:
    srv = TlsServer(certs, require_client=True)
    yield srv
    srv.close()


def _handshake(settings: MqttTls, port: int, host: str = "127.0.0.1") -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return handshake(sock, settings, host)
    except BaseException:
        sock.close()
        raise


def test_mutual_tls_handshake_presents_our_certificate(certs: CertSet, server: TlsServer) -> None:
    with _handshake(
        MqttTls(certs.ca, certs.client_cert("bridge"), certs.client_key("bridge")), server.port
    ) as s:
        s.sendall(b"x")
    deadline = 50
    while not server.peer_cn and deadline:
        threading.Event().wait(0.05)
        deadline -= 1
    assert server.peer_cn == ["bridge"]


def test_an_unknown_ca_is_refused_in_words(certs: CertSet, server: TlsServer) -> None:
    # The server sends its CA along, so OpenSSL says so rather than "unable to get local issuer".
    with pytest.raises(
        TlsRefused, match=r"^TLS: certificate verify failed: self-signed certificate in certificate chain$"
    ):
        _handshake(
            MqttTls(certs.rogue_ca, certs.client_cert("bridge"), certs.client_key("bridge")), server.port
        )


def test_a_host_name_the_certificate_does_not_list_is_refused_in_words(
    certs: CertSet, server: TlsServer
) -> None:
    bridge = MqttTls(certs.ca, certs.client_cert("bridge"), certs.client_key("bridge"))
    with pytest.raises(TlsRefused, match="hostname mismatch") as caught:
        _handshake(bridge, server.port, host="broker.example")
    assert not caught.value.retriable
    with _handshake(
        MqttTls(certs.ca, bridge.certificate_location, bridge.key_location, check_hostname=False),
        server.port,
        host="broker.example",
    ):
        pass


def test_the_refusal_of_our_certificate_after_a_tls_1_3_handshake_is_worded() -> None:
    with_cert = MqttTls(certificate_location=Path("c.pem"))
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    assert tls.refusal(eof, with_cert, "h").words == (
        "the broker refused our client certificate (it ended the TLS session before CONNACK)"
    )
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"
    assert (
        tls.refusal(alert, with_cert, "h").words == "the broker refused our client certificate (unknown ca)"
    )
    assert "set mqtt.ssl.certificate.location" in tls.refusal(ConnectionResetError(), MqttTls(), "h").words
