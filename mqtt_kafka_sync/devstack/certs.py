"""Throwaway certificates for the secured local stack: one CA, a server, clients, and two bad ones.

Made with ``cryptography`` (EC P-256, SHA-256), written as PEM files into one directory::

    ca.pem                    the CA every broker and client trusts
    server.pem, server.key    the brokers' certificate (SAN localhost, 127.0.0.1, ::1), its key
    bridge.pem, bridge.key    the bridge's client certificate (CN bridge)
    bridge-encrypted.key      the same key encrypted with :attr:`CertSet.key_password`
    device.pem, device.key    a device's client certificate (CN device-1)
    rogue-ca.pem, rogue.pem, rogue.key      a client certificate from another CA: must be refused
    expired.pem, expired.key  a client certificate from our CA that expired yesterday: must be refused

Keys are PKCS#8 (``BEGIN PRIVATE KEY`` / ``BEGIN ENCRYPTED PRIVATE KEY``), which OpenSSL (Mosquitto,
librdkafka, Python's ssl) and Java (Kafka's PEM keystore, KIP-651) all read.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
BRIDGE_CN = "bridge"
DEVICE_CN = "device-1"
_VALIDITY = datetime.timedelta(days=5 * 365)
_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertSet:
    """The paths of one directory of certificates made by :func:`ensure_certs`."""

    root: Path

    def _path(self, name: str) -> Path:
        return self.root / name

    @property
    def ca(self) -> Path:
        return self._path("ca.pem")

    @property
    def server_cert(self) -> Path:
        return self._path("server.pem")

    @property
    def server_key(self) -> Path:
        return self._path("server.key")

    def client_cert(self, name: str) -> Path:
        """``bridge``, ``device``, ``rogue`` or ``expired``."""
        return self._path(f"{name}.pem")

    def client_key(self, name: str) -> Path:
        return self._path(f"{name}.key")

    @property
    def bridge_encrypted_key(self) -> Path:
        return self._path("bridge-encrypted.key")

    @property
    def rogue_ca(self) -> Path:
        return self._path("rogue-ca.pem")

    @property
    def password_file(self) -> Path:
        return self._path("key-password.json")

    @property
    def key_password(self) -> str:
        """The passphrase of the ``*-encrypted.key`` files (random, kept in ``key-password.json``)."""
        return str(json.loads(self.password_file.read_text())["password"])


def ensure_certs(root: Path) -> CertSet:
    """The certificates under ``root``, made on first use and kept (clients may hold copies)."""
    certs = CertSet(root)
    if certs.password_file.is_file():
        return certs
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    password = secrets.token_urlsafe(16)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca = _ca("mqtt-kafka-sync dev CA", now)
    rogue_key, rogue_ca = _ca("some other CA", now)
    server_key, server = _leaf(ca_key, ca, "localhost", now, now + _VALIDITY, server=True)
    _write(certs.ca, _pem(ca))
    _write(certs.rogue_ca, _pem(rogue_ca))
    _write(certs.server_cert, _pem(server) + _pem(ca))
    _write(certs.server_key, _key_pem(server_key))
    valid = (now, now + _VALIDITY)
    expired = (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
    for name, cn, (issuer_key, issuer), (start, end) in (
        ("bridge", BRIDGE_CN, (ca_key, ca), valid),
        ("device", DEVICE_CN, (ca_key, ca), valid),
        ("rogue", BRIDGE_CN, (rogue_key, rogue_ca), valid),
        ("expired", BRIDGE_CN, (ca_key, ca), expired),
    ):
        key, cert = _leaf(issuer_key, issuer, cn, start, end, server=False)
        _write(certs.client_cert(name), _pem(cert))
        _write(certs.client_key(name), _key_pem(key))
        if name == "bridge":
            _write(certs.bridge_encrypted_key, _key_pem(key, password))
    # Written last: its presence says the set is complete.
    _write(certs.password_file, json.dumps({"password": password}).encode())
    return certs


def _ca(name: str, now: datetime.datetime) -> tuple[_Key, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key, now - datetime.timedelta(hours=1), now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    issuer_key: _Key,
    issuer: x509.Certificate,
    common_name: str,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    server: bool,
) -> tuple[_Key, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, issuer.subject, key, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if server:
        names: list[x509.GeneralName] = [x509.DNSName(SERVER_NAMES[0])]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_NAMES[1:]]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _builder(
    subject: x509.Name, issuer: x509.Name, key: _Key, start: datetime.datetime, end: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: _Key, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)
