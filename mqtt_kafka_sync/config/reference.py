"""Render the config reference (docs/config-reference.md) from :mod:`mqtt_kafka_sync.config.spec`.

Run ``python -m mqtt_kafka_sync.config.reference > docs/config-reference.md`` after changing the spec;
a unit test fails while the file and the spec disagree.
"""

from __future__ import annotations

import sys

from mqtt_kafka_sync.config import spec
from mqtt_kafka_sync.config.keyspec import KeySpec

COMMAND = "python -m mqtt_kafka_sync.config.reference > docs/config-reference.md"

_INTRO = f"""\
# Connector configuration reference

<!-- Generated from mqtt_kafka_sync/config/spec.py by `{COMMAND}`. Do not edit by hand. -->

A connector is one file, in either of Kafka Connect's two forms:

- JSON, as Kafka Connect's REST API takes it: `{{"name": "...", "config": {{"key": "value", ...}}}}`.
  Values may be strings, numbers or booleans; lists are comma-separated strings.
- Java `.properties` (read as UTF-8): `key=value` or `key: value`, `#` and `!` comments, a trailing
  `\\` continues a line, and `name=...` sets the name.

Both forms hold the same flat, dotted keys, listed below. Leading and trailing blanks around values
are ignored (except in secrets), and an empty value counts as not set. Unknown keys, keys set twice,
and connector names used by two files are errors. `mqtt-kafka-sync validate FILE...` reports every
problem in every file at once, each with the file, the key, what is wrong and what would be right.

## Config providers

A value may contain references, resolved when the file is loaded, as in Kafka Connect:

- `${{env:VAR}}`: the environment variable `VAR`.
- `${{file:/path}}`: the whole file, without its trailing newline.
- `${{file:/path:key}}`: `key` from a `.properties` file.

A relative path is taken relative to the connector file's folder. A missing variable, file or key
is an error. `${{` always starts a reference: there is no escape for a literal `${{`.
"""

_ROUTES = """\
A route pattern is an MQTT topic filter whose levels are literals, `{name}` (a placeholder: one
level, captured; names match `[A-Za-z_][A-Za-z0-9_]*` and may not repeat), `+` (one level, not
captured) or, last only, `#` (any number of levels, including none). `{topic}` is reserved.

Templates (`kafka.topic`, `kafka.key`) may use the pattern's placeholders, `{topic}` (the whole MQTT
topic) and, when the pattern ends in `#`, `{#}` (the levels `#` matched, joined by `/`). `{{` and `}}`
are literal braces. A template naming a placeholder its pattern lacks is an error at load. A Kafka
topic that renders to an illegal name (legal: 1 to 249 of `a-z A-Z 0-9 . _ -`, not `.` or `..`) sends
the message to the dead-letter topic.

`json` re-encodes numbers as doubles in their shortest form (`1.50` becomes `1.5`, `1E3` becomes
`1000.0`); integers are kept exactly. Payloads with `NaN` or `Infinity` are rejected.

`avro` checks the JSON payload against the route's schema (`value.schema`) and writes it as Avro,
framed as the `value.converter.*` keys say; a payload that does not fit goes to the dead-letter
topic with the field and the problem in `dlq.detail`. How JSON maps to Avro, both wire formats and
how to read them from Java and Python: docs/formats.md.
"""


_INTROS = {
    "Value converter (Avro wire format)": """\
Connector-wide settings of `avro` routes, named as for Kafka Connect's AvroConverter. Without
`value.converter.schema.registry.url`, values use Avro single-object encoding and need no registry.
""",
    "Throttle (consumer lag)": """\
Optional. When consumers of the ingested topics fall behind (a site's gateways flushing hours of
backlog at once), the tasks acknowledge MQTT messages more slowly, so the broker keeps the backlog
and sends it at a pace the consumers can take. Nothing is dropped. How the rate is chosen and how to
pick each value: docs/replay.md.
""",
}


def render_reference() -> str:
    """The whole Markdown document."""
    parts = [_INTRO]
    for section, keys in spec.SOURCE_SECTIONS.items():
        parts.append(f"## {section}\n")
        if section == "Routes":
            parts.append(_ROUTES)
        elif section in _INTROS:
            parts.append(_INTROS[section])
        parts.extend(_key(k) for k in keys)
        if section == "Kafka":
            parts.append(_common())
            parts.append(_producer())
    parts.append(_RELAY)
    for section, keys in spec.RELAY_SECTIONS.items():
        parts.append(f"## {section}\n")
        if section == "Relay: Routes":
            parts.append(_RELAY_ROUTES)
        parts.extend(_key(k) for k in keys)
        if section == "Relay: Kafka":
            parts.append(_consumer())
            parts.append(_COMMON_RELAY)
    return "\n".join(parts)


_RELAY = """\
## Command relay (`mqtt_kafka_sync.KafkaCommandRelayConnector`)

The sections above configure the MQTT source connector. A file with
`connector.class=mqtt_kafka_sync.KafkaCommandRelayConnector` configures the command relay, which
reads Kafka records and publishes them to MQTT as commands; it takes the keys below, and only
those. How it works and what it guarantees: docs/relay.md.
"""

_RELAY_ROUTES = """\
A relay route reads the records of one Kafka topic (or of every topic a `^` regular expression
matches) and publishes each as an MQTT 5 command. The first route whose `kafka.topic` matches the
record's topic wins.

`kafka.key` is a template read backwards: literal text must appear in the record key as written,
and each `{name}` takes the shortest text that lets the rest match, from the left (`{plant}.{device}`
reads `a.b.c` as plant `a`, device `b.c`). Two placeholders need literal text between them. The
default, `{key}`, takes the whole key.

`mqtt.topic` and `mqtt.response.topic` may use the key's placeholders and `{header.<name>}`, the
value of the record's Kafka header `<name>` (the last one when it repeats). Their literal text may
not contain `+`, `#` or NUL, nor start with `$`. A value that is empty or contains `/`, `+`, `#`,
NUL or another control character, or a topic that would start with `$`, is never published: the
record goes to the dead-letter topic with `dlq.reason=unsafe-placeholder`.

Every Kafka header becomes an MQTT 5 user property (a header that is not UTF-8 text sends the
record to the dead-letter topic with `dlq.reason=bad-header`).
"""


def _consumer() -> str:
    rows = "\n".join(f"| `{k}` | {why} |" for k, why in spec.CONSUMER_FORBIDDEN.items())
    return f"""\
### `kafka.consumer.<property>`

Passed to the Kafka consumer (librdkafka) as `<property>`, e.g.
`kafka.consumer.session.timeout.ms=10000` or `kafka.consumer.auto.offset.reset=latest`. The relay sets
`auto.offset.reset=earliest` (a new group executes the commands already waiting; expiry keeps stale
ones from running) and `auto.commit.interval.ms=250` (commands acknowledged since the last commit
are published again after a crash). Properties that carry the delivery guarantee cannot be set:

| Property | Why |
|---|---|
{rows}

### `kafka.producer.<property>`

Passed to the producer that writes the dead-letter topic, with the same rules as for the source
connector.
"""


def _key(key: KeySpec) -> str:
    facts = [f"- Type: {_type(key)}"]
    if key.required:
        facts.append("- Required")
    if key.default is not None:
        facts.append(f"- Default: `{key.default}`")
    elif key.default_doc:
        facts.append(f"- Default: {key.default_doc}")
    facts.append(f"- Example: `{key.key}={key.example}`")
    return f"### `{key.key}`\n\n{key.description}\n\n" + "\n".join(facts) + "\n"


_TYPE_NAMES = {"str": "string", "list": "comma-separated list", "secret": "secret string"}


def _type(key: KeySpec) -> str:
    text = _TYPE_NAMES.get(key.type, key.type)
    if key.choices:
        text += ": " + ", ".join(f"`{c}`" for c in key.choices)
    if key.range_doc():
        text += f", {key.range_doc()}"
    if key.pattern_doc:
        text += f" of {key.pattern_doc}"
    return text


def _common() -> str:
    rows = "\n".join(f"| `{k}` | {why} |" for k, why in spec.COMMON_FORBIDDEN.items())
    return f"""\
### `kafka.<property>`

Any librdkafka property, passed to *every* Kafka client of the connector: the producer, the
dead-letter producer, a relay's consumer, the admin client (topic limits) and the lag reader of
`throttle.lag.groups` (under `run`, in its own process). This is where Kafka security goes, e.g.
`kafka.security.protocol=SASL_SSL`, `kafka.sasl.mechanism=SCRAM-SHA-512`, `kafka.sasl.username`,
`kafka.sasl.password=${{env:KAFKA_PASSWORD}}`, `kafka.ssl.ca.location`,
`kafka.ssl.certificate.location`, `kafka.ssl.key.location`, `kafka.ssl.key.password`,
`kafka.sasl.oauthbearer.*` (docs/security.md). `kafka.producer.<property>` and
`kafka.consumer.<property>` win over `kafka.<property>` for their client. A name librdkafka does not
know is an unknown key. Values of secret properties (`*.password`, `*.secret`, `*.passphrase`,
`*user.info`, `ssl.key.pem`, `*.config`) are never printed. `validate` checks that the files named by
`ssl.ca.location`, `ssl.certificate.location` and `ssl.key.location` exist and parse, that the key
belongs to the certificate and that `ssl.key.password` opens it. These cannot be set:

| Property | Why |
|---|---|
{rows}
"""


_COMMON_RELAY = """\
### `kafka.<property>` (relay)

As for the source connector: every Kafka client of the relay (consumer, dead-letter producer, lag
reader for the metrics) takes it.
"""


def _producer() -> str:
    rows = "\n".join(f"| `{k}` | {why} |" for k, why in spec.PRODUCER_FORBIDDEN.items())
    limited = " and ".join(f"`{k}`" for k in spec.PRODUCER_LIMITED)
    return f"""\
### `kafka.producer.<property>`

Passed to the Kafka producer (librdkafka) as `<property>`, e.g. `kafka.producer.linger.ms=20` or
`kafka.producer.compression.type=lz4`. Properties that carry the delivery guarantee cannot be set:

| Property | Why |
|---|---|
{rows}

{limited} may be set from 1 to {spec.MAX_IN_FLIGHT}; more breaks ordering under the idempotent producer.
"""


if __name__ == "__main__":
    sys.stdout.write(render_reference())
