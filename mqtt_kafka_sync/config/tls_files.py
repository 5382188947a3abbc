"""The TLS files a connection names, loaded once here for both sides: CA bundle, certificate, key.

One loader (Python's ``ssl``) serves the MQTT side at every connect (:mod:`mqtt_kafka_sync.mqtt.tls`
loads ``mqtt.ssl.*`` into the context it connects with) and ``validate`` on both sides, so what the
loader accepts is what a connect uses. librdkafka reads ``kafka.ssl.*`` only when it builds a client,
and then says only "ssl.key.location failed" with an OpenSSL code: the same loader, run on a context
that is thrown away, checks those files at load time. Each problem names the key that is wrong (a
file that is missing or does not parse, a key that does not belong to the certificate, a passphrase
that does not open it), never a passphrase. The ``mqtt.ssl.*`` keys take librdkafka's names.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mqtt_kafka_sync.config.keyspec import BadValue
from mqtt_kafka_sync.config.model import MqttTls
from mqtt_kafka_sync.secret import Secret


@dataclass(frozen=True)
class TlsKeys:
    """The names of one side's TLS settings, for the problems the loader reports."""

    ca: str
    certificate: str
    key: str
    key_password: str


MQTT_KEYS = TlsKeys(
    "mqtt.ssl.ca.location", "mqtt.ssl.certificate.location", "mqtt.ssl.key.location", "mqtt.ssl.key.password"
)
KAFKA_PROPERTIES = TlsKeys(
    "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password"
)
"""librdkafka's names; ``kafka.`` (or ``kafka.producer.`` ...) is put before them by the caller."""

Problem = tuple[str, str, str]
"""(key, what is wrong, the fix): never a secret's value."""


class TlsFileProblem(BadValue):
    """A TLS file (or the key's passphrase) that cannot be used; ``key`` names the config key."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        super().__init__(problem, fix)


class _NoPassword(Exception):
    """OpenSSL asked for a passphrase we do not have (it would otherwise prompt on the terminal)."""


def load_mqtt_tls(context: ssl.SSLContext, tls: MqttTls) -> None:
    """Load ``tls``'s CA bundle (or the system trust store) and client certificate and key into
    ``context``. Raises :class:`TlsFileProblem`."""
    if tls.ca_location is not None:
        load_ca(context, tls.ca_location, MQTT_KEYS)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if tls.certificate_location is not None:
        load_pair(context, tls.certificate_location, tls.key_location, tls.key_password, MQTT_KEYS)


def load_ca(context: ssl.SSLContext, path: Path, keys: TlsKeys) -> None:
    """The CA bundle at ``path`` (a PEM file, or a directory of hashed certificates) into ``context``."""
    _load_certificates(context, keys.ca, path, "a PEM CA bundle")


def load_pair(
    context: ssl.SSLContext, certificate: Path, key: Path | None, password: Secret | None, keys: TlsKeys
) -> None:
    """Our certificate and its key (``key`` None: in the certificate file) into ``context``."""
    _load_certificates(
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), keys.certificate, certificate, "a PEM certificate"
    )
    key_key = keys.key if key is not None else keys.certificate
    asked: list[bool] = []

    def passphrase() -> str:
        asked.append(True)
        if password is None:
            raise _NoPassword
        return password.reveal()

    try:
        context.load_cert_chain(certificate, key, password=passphrase)
    except _NoPassword:
        raise TlsFileProblem(key_key, "the key is encrypted", f"set {keys.key_password}") from None
    except FileNotFoundError:
        raise TlsFileProblem(key_key, f"{key} does not exist", "name an existing file") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            fix = f"name the key of the certificate in {keys.certificate}"
            raise TlsFileProblem(key_key, "the key does not match the certificate", fix) from None
        if asked and password is not None:
            fix = "set the passphrase the key was encrypted with"
            raise TlsFileProblem(keys.key_password, "the passphrase does not open the key", fix) from None
        raise TlsFileProblem(key_key, "no PEM private key found", "name a PEM private key file") from None
    except OSError as exc:
        raise TlsFileProblem(key_key, f"cannot read it: {exc.strerror}", "make it readable") from None


def _load_certificates(context: ssl.SSLContext, key: str, path: Path, what: str) -> None:
    try:
        if path.is_dir():
            context.load_verify_locations(capath=path)
        else:
            context.load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise TlsFileProblem(key, f"{path} does not exist", "name an existing file") from None
    except ssl.SSLError:
        raise TlsFileProblem(key, f"{path} holds no PEM certificate", f"name {what}") from None
    except OSError as exc:
        raise TlsFileProblem(key, f"cannot read {path}: {exc.strerror}", "make it readable") from None


def tls_file_problems(settings: Mapping[str, str | Secret]) -> list[Problem]:
    """What is wrong with the files librdkafka ``settings`` name, by property (CA first, then the pair)."""
    keys = KAFKA_PROPERTIES
    problems: list[Problem] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca = settings.get(keys.ca)
    if ca and ca != "probe":  # probe: librdkafka looks in the system's usual places
        problems += _problems(lambda: load_ca(context, Path(str(ca)), keys))
    cert, key = settings.get(keys.certificate), settings.get(keys.key)
    if (cert is None) != (key is None):
        given, other = (keys.certificate, keys.key) if key is None else (keys.key, keys.certificate)
        problems.append((given, f"is set but {other} is not", f"set {other} too (mutual TLS)"))
    elif cert and key:
        password = settings.get(keys.key_password)
        secret = password if isinstance(password, Secret) or password is None else Secret(password)
        problems += _problems(lambda: load_pair(context, Path(str(cert)), Path(str(key)), secret, keys))
    return problems


def _problems(load: Callable[[], None]) -> list[Problem]:
    try:
        load()
    except TlsFileProblem as exc:
        return [(exc.key, exc.problem, exc.fix)]
    return []
