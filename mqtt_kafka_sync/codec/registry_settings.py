"""Where the schema registry is and how schemas are registered there (``value.converter.*``).

A light module of its own: :mod:`mqtt_kafka_sync.codec.registry`, the client, is a heavy import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from mqtt_kafka_sync.secret import Secret

SubjectStrategy = Literal["TopicNameStrategy", "RecordNameStrategy", "TopicRecordNameStrategy"]


@dataclass(frozen=True)
class RegistrySettings:
    """``value.converter.*``: where the schema registry is and how schemas are registered there."""

    url: str = field(repr=False)
    """May hold credentials (``basic.auth.credentials.source=URL``): log :attr:`safe_url` instead."""
    user_info: Secret | None = None
    credentials_source: Literal["USER_INFO", "URL"] = "USER_INFO"
    auto_register: bool = True
    subject_strategy: SubjectStrategy = "TopicNameStrategy"

    @property
    def safe_url(self) -> str:
        parts = urlsplit(self.url)
        if parts.username is None and parts.password is None:
            return self.url
        host = parts.hostname or ""
        netloc = f"****@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    def subject(self, kafka_topic: str, record_name: str) -> str:
        """The subject a value schema is registered under, as Confluent's serializers name it."""
        if self.subject_strategy == "RecordNameStrategy":
            return record_name
        if self.subject_strategy == "TopicRecordNameStrategy":
            return f"{kafka_topic}-{record_name}"
        return f"{kafka_topic}-value"
