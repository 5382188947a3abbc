"""A stand-in for a Confluent Schema Registry: the part of its REST API that serializers use.

Not a real registry (none can be assembled from the package registries this project's machines
reach: see docs/formats.md). It speaks HTTP and answers as the Confluent REST API reference says, so
the worker's real client (confluent-kafka's SchemaRegistryClient over HTTP, with basic auth) and
confluent-kafka's AvroDeserializer are exercised end to end. Ids are global and one per schema
(schemas that parse to the same canonical form share one), versions count per subject. Set
``SCHEMA_REGISTRY_URL`` to run the tests against a real registry instead.

Endpoints: ``POST /subjects/{s}/versions`` (register), ``POST /subjects/{s}`` (look up),
``GET /subjects/{s}/versions/latest``, ``GET /schemas/ids/{id}``, ``GET /subjects``.
"""

from __future__ import annotations

import base64
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class FakeSchemaRegistry:
    def __init__(self, user_info: str | None = None) -> None:
        self.user_info = user_info
        self.ids: dict[str, int] = {}  # canonical form -> id
        self.texts: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}  # subject -> ids, one per version
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-registry", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeSchemaRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- the registry's behaviour ---------------------------------------------------------------------
    def register(self, subject: str, text: str) -> dict[str, Any]:
        with self._lock:
            canonical = to_parsing_canonical_form(parse_schema(json.loads(text)))
            schema_id = self.ids.setdefault(canonical, len(self.ids) + 1)
            self.texts.setdefault(schema_id, text)
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return {"id": schema_id}

    def lookup(self, subject: str, text: str) -> dict[str, Any] | None:
        canonical = to_parsing_canonical_form(parse_schema(json.loads(text)))
        schema_id = self.ids.get(canonical)
        versions = self.subjects.get(subject, [])
        if schema_id is None or schema_id not in versions:
            return None
        return self._version(subject, versions.index(schema_id) + 1)

    def latest(self, subject: str) -> dict[str, Any] | None:
        versions = self.subjects.get(subject)
        return self._version(subject, len(versions)) if versions else None

    def _version(self, subject: str, version: int) -> dict[str, Any]:
        schema_id = self.subjects[subject][version - 1]
        return {"subject": subject, "id": schema_id, "version": version, "schema": self.texts[schema_id]}


def _handler(registry: FakeSchemaRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            path = urlsplit(self.path).path
            registry.requests.append(f"{method} {path}")
            if not self._authorised():
                self._answer(HTTPStatus.UNAUTHORIZED, {"error_code": 401, "message": "Unauthorized"})
                return
            parts = [unquote(p) for p in path.strip("/").split("/")]
            body: dict[str, Any] = {}
            if method == "POST":
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            found = self._route(method, parts, body)
            if found is None:
                self._answer(HTTPStatus.NOT_FOUND, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._answer(HTTPStatus.OK, found)

        def _route(self, method: str, parts: list[str], body: dict[str, Any]) -> Any:
            match method, parts:
                case "POST", ["subjects", subject, "versions"]:
                    return registry.register(subject, body["schema"])
                case "POST", ["subjects", subject]:
                    return registry.lookup(subject, body["schema"])
                case "GET", ["subjects", subject, "versions", "latest"]:
                    return registry.latest(subject)
                case "GET", ["schemas", "ids", schema_id] if int(schema_id) in registry.texts:
                    return {"schema": registry.texts[int(schema_id)]}
                case "GET", ["subjects"]:
                    return sorted(registry.subjects)
            return None

        def _authorised(self) -> bool:
            if registry.user_info is None:
                return True
            expected = "Basic " + base64.b64encode(registry.user_info.encode()).decode()
            return self.headers.get("Authorization") == expected

        def _answer(self, status: HTTPStatus, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", _CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
