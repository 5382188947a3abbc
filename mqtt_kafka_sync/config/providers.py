"""Config providers, as in Kafka Connect: ``${env:VAR}``, ``${file:/path}``, ``${file:/path:key}``.

References are replaced inside values, once (a substituted value is not scanned again). The
environment is passed in; this module never reads ``os.environ``. A relative file path is taken
relative to the connector file's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mqtt_kafka_sync.config.properties import PropertiesError, parse_properties

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_USAGE = "write ${env:VAR}, ${file:/path} or ${file:/path:key}"


class ProviderError(ValueError):
    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)


def resolve(value: str, env: Mapping[str, str], base_dir: Path) -> str:
    """``value`` with every ``${provider:...}`` reference replaced; raises :class:`ProviderError`."""
    if "${" not in value:
        return value
    return _REFERENCE.sub(lambda m: _lookup(m.group(1), env, base_dir), value)


def _lookup(reference: str, env: Mapping[str, str], base_dir: Path) -> str:
    provider, colon, rest = reference.partition(":")
    if provider == "env" and rest:
        if rest not in env:
            fix = f"set {rest} before starting, or remove ${{env:{rest}}}"
            raise ProviderError(f"environment variable {rest!r} is not set", fix)
        return env[rest]
    if provider == "file" and rest:
        path, _, key = rest.partition(":")
        return _read(base_dir / path, key)
    if colon and provider not in ("env", "file"):
        raise ProviderError(f"unknown config provider {provider!r} in ${{{reference}}}", _USAGE)
    raise ProviderError(f"malformed reference ${{{reference}}}", _USAGE)


def _read(path: Path, key: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProviderError(f"cannot read {path}: {exc.strerror}", "check the path and permissions") from None
    except UnicodeDecodeError:
        raise ProviderError(f"{path} is not UTF-8 text", "save it as UTF-8") from None
    if not key:
        return text.rstrip("\r\n")
    try:
        entries = {e.key: e.value for e in parse_properties(text)}
    except PropertiesError as exc:
        raise ProviderError(f"{path}: {exc}", "fix the properties file") from None
    if key not in entries:
        raise ProviderError(f"{path} has no key {key!r}", f"add {key}=... to {path}")
    return entries[key]
