"""One HTTP port per ``run`` process: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for
Kubernetes probes. Standard library only; a thread per request; no log line per request.

``/healthz``: 200 while the supervisor runs and no task's network loop is wedged (has not turned for
``--liveness-timeout``); 503 naming the task otherwise, so an orchestrator restarts the process.
``/readyz``: 200 when every task is connected to both brokers and subscribed (ingest) or in its
consumer group (relay); otherwise 503 with one line per task that is not, saying what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from mqtt_kafka_sync.telemetry.exceptions import TelemetryError

TEXT = "text/plain; charset=utf-8"


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        host: str,
        port: int,
        scrape: Callable[[], bytes],
        readiness: Callable[[], tuple[bool, str]],
        liveness: Callable[[], tuple[bool, str]] = lambda: (True, "ok\n"),
    ) -> None:
        self.scrape = scrape
        self.readiness = readiness
        self.liveness = liveness
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise TelemetryError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}); pass --metrics-port with a free "
                "port, or 0 for none"
            ) from exc

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_PLAIN_0_0_4, self.server.scrape())
        elif path == "/healthz":
            alive, text = self.server.liveness()
            self._send(200 if alive else 503, TEXT, text.encode())
        elif path == "/readyz":
            ready, text = self.server.readiness()
            self._send(200 if ready else 503, TEXT, text.encode())
        else:
            self._send(404, TEXT, b"not found: try /metrics, /healthz or /readyz\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet on the happy path: no line per scrape or probe
