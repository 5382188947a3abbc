"""Schema ids from a Confluent-compatible schema registry, through confluent-kafka's own client.

Imported only when a registry is configured (the client takes about 0.4 s to import). Every call
happens when a task starts, or in ``tail``, never per message; one client per registry and process,
whose caches make a second lookup of the same schema free (a task adopting a dead peer's session
builds its encoders again).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError

from mqtt_kafka_sync.codec.registry_settings import RegistrySettings
from mqtt_kafka_sync.codec.schema import AvroSchema
from mqtt_kafka_sync.errors import SchemaRegistryError

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
_clients: dict[RegistrySettings, SchemaRegistryClient] = {}
_lock = threading.Lock()


def client(settings: RegistrySettings) -> SchemaRegistryClient:
    """The process's client for ``settings`` (``mock://`` gives confluent-kafka's in-process mock)."""
    with _lock:
        found = _clients.get(settings)
        if found is None:
            conf: dict[str, Any] = {"url": settings.url}
            if not settings.url.startswith("mock://"):
                conf["timeout"] = TIMEOUT_SECONDS
            if settings.credentials_source == "USER_INFO" and settings.user_info is not None:
                conf["basic.auth.user.info"] = settings.user_info.reveal()
            found = _clients[settings] = SchemaRegistryClient.new_client(conf)
        return found


def schema_id(settings: RegistrySettings, subject: str, schema: AvroSchema) -> int:
    """The id of ``schema`` under ``subject``: registered if ``auto.register.schemas``, else looked up."""
    registry = client(settings)
    wanted = Schema(schema.text, "AVRO")
    action = "register" if settings.auto_register else "look up"
    try:
        if settings.auto_register:
            found: int | None = registry.register_schema(subject, wanted)
        else:
            found = registry.lookup_schema(subject, wanted).schema_id
    except Exception as exc:  # noqa: BLE001 - the client raises its own errors, httpx's and authlib's
        raise _error(settings, f"{action} {schema.source} under subject {subject!r}", exc) from None
    if found is None:
        raise SchemaRegistryError(f"schema registry {settings.safe_url}: no id for subject {subject!r}")
    logger.debug("schema %s is id %d under subject %s", schema.source, found, subject)
    return found


def latest_schema(settings: RegistrySettings, subject: str) -> tuple[int, str]:
    """``(id, schema text)`` of the latest version under ``subject``."""
    try:
        found = client(settings).get_latest_version(subject)
        return int(found.schema_id or 0), str(found.schema.schema_str)
    except Exception as exc:  # noqa: BLE001 - the client raises its own errors, httpx's and authlib's
        raise _error(settings, f"fetch the latest schema of subject {subject!r}", exc) from None


def schema_by_id(settings: RegistrySettings, wanted: int) -> str:
    """The text of schema ``wanted``."""
    try:
        return str(client(settings).get_schema(wanted).schema_str)
    except Exception as exc:  # noqa: BLE001 - the client raises its own errors, httpx's and authlib's
        raise _error(settings, f"fetch schema id {wanted}", exc) from None


def _error(settings: RegistrySettings, action: str, exc: Exception) -> SchemaRegistryError:
    if isinstance(exc, ClientError):
        status = exc.http_status_code
        retriable = status < 0 or status >= 500 or status == 429
        detail = f"HTTP {status}, error {exc.error_code}: {exc.error_message}"
    else:
        retriable = True
        detail = f"{type(exc).__name__}: {exc}"
    return SchemaRegistryError(
        f"schema registry {settings.safe_url}: could not {action} ({detail})", retriable=retriable
    )
