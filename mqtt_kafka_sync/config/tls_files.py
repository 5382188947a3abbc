"""Check the TLS files a connection names before a client needs them: CA bundle, certificate, key.

librdkafka reads these only when it builds a client with TLS, and then says only "ssl.key.location
failed" with an OpenSSL code; the MQTT side reads them at connect time. Checked here (Python's
``ssl`` for the CA bundle, ``cryptography`` for the pair), each problem names the property that is
wrong: a file that is missing or does not parse, a key that does not belong to the certificate, a
passphrase that does not open it. The names are librdkafka's, which the ``mqtt.ssl.*`` keys take too.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mqtt_kafka_sync.secret import Secret

CA = "ssl.ca.location"
CERTIFICATE = "ssl.certificate.location"
KEY = "ssl.key.location"
KEY_PASSWORD = "ssl.key.password"  # noqa: S105 (a property name)
FILE_PROPERTIES = (CA, CERTIFICATE, KEY)

Problem = tuple[str, str, str]
"""(property, what is wrong, the fix): never a secret's value."""


def tls_file_problems(settings: Mapping[str, str]) -> list[Problem]:
    """What is wrong with the files ``settings`` name (librdkafka property names), in file order."""
    problems: list[Problem] = []
    missing = {p: why for p in FILE_PROPERTIES if p in settings and (why := _missing(settings[p]))}
    for prop, why in missing.items():
        problems.append((prop, f"{settings[prop]}: {why}", "check the path"))
    ca = settings.get(CA)
    if ca and CA not in missing and ca != "probe":
        problems += _ca_problems(ca)
    cert, key = settings.get(CERTIFICATE), settings.get(KEY)
    if (cert is None) != (key is None):
        given, other = (CERTIFICATE, KEY) if key is None else (KEY, CERTIFICATE)
        problems.append((given, f"{given} is set but {other} is not", f"set {other} too (mutual TLS)"))
    elif cert and key and not {CERTIFICATE, KEY} & missing.keys():
        problems += _pair_problems(cert, key, settings.get(KEY_PASSWORD))
    return problems


def _missing(path: str) -> str:
    if path == "probe":
        return ""
    file = Path(path)
    if not file.exists():
        return "no such file"
    try:
        with file.open("rb"):
            return ""
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"


def _ca_problems(ca: str) -> list[Problem]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if Path(ca).is_dir():
            context.load_verify_locations(capath=ca)
        else:
            context.load_verify_locations(cafile=ca)
    except (ssl.SSLError, ValueError) as exc:
        problem = f"{ca} is not a PEM CA certificate bundle ({_reason(exc)})"
        return [(CA, problem, "point it at the CA's PEM file")]
    return []


def _pair_problems(cert: str, key: str, password: str | None) -> list[Problem]:  # noqa: PLR0911
    try:
        certificate = x509.load_pem_x509_certificate(Path(cert).read_bytes())
    except ValueError:
        return [(CERTIFICATE, f"{cert} is not a PEM certificate", "use the client certificate's PEM file")]
    text = password.reveal() if isinstance(password, Secret) else password
    try:
        private = serialization.load_pem_private_key(
            Path(key).read_bytes(), password=text.encode() if text else None
        )
    except TypeError:  # encrypted without a passphrase, or a passphrase for a plain key
        if text:
            return [(KEY_PASSWORD, f"is set but {key} is not encrypted", f"remove {KEY_PASSWORD}")]
        return [(KEY, f"{key} is encrypted", f"set {KEY_PASSWORD}")]
    except ValueError:
        if text and b"ENCRYPTED" in Path(key).read_bytes():
            return [(KEY_PASSWORD, f"does not open {key}", f"set the passphrase of {key}")]
        return [(KEY, f"{key} is not a PEM private key", "use the PEM file of the client key")]
    if private.public_key() != certificate.public_key():
        return [(KEY, f"{key} is not the key of {CERTIFICATE} {cert}", "name the matching key")]
    return []


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)
