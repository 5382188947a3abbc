"""Ports for the local stack: let the OS choose free ones, or check that configured ones are free."""

from __future__ import annotations

import contextlib
import socket

from mqtt_kafka_sync.errors import StackError

LOCALHOST = "127.0.0.1"


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """``count`` distinct ports the OS had free just now (bound to port 0, then released)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def is_free(port: int, host: str = LOCALHOST) -> bool:
    """True when nothing listens on ``host:port`` (a socket in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def require_free(port: int, option: str, host: str = LOCALHOST) -> None:
    """Raise StackError naming the CLI ``option`` that changes the port, when ``port`` is taken."""
    if not is_free(port, host):
        raise StackError(f"port {port} is already in use by another process; pass {option} or stop it")


def accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
