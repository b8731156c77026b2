"""Loopback helpers for the local clusters s2s starts itself (tests, benchmarks, demo)."""
from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports the OS just handed out on 127.0.0.1 (all bound at once, so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
