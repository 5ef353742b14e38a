"""The kernel that runs someone else's notebook (``make grade``): limits first, then IPython.

``python course_utils/tooling/sandbox.py -f CONNECTION_FILE`` caps the process's address space at
``$COURSE_SANDBOX_MEMORY`` bytes (``RLIMIT_AS``: an allocation past it fails with
``MemoryError`` instead of taking the machine down), refuses every Python socket
connection that leaves the machine (loopback and Unix sockets still work; the kernel's own
ZeroMQ sockets are not Python sockets), then starts an ordinary IPython kernel. The
network guard is a guard against accidents, not a security boundary: a subprocess or a
C extension is not covered. The file runs as a script and imports only the standard library
before the kernel starts, so the kernel starts as fast as an ordinary one.
"""

from __future__ import annotations

import ipaddress
import os
import resource
import socket
import sys
from typing import Any

MEMORY_ENV = "COURSE_SANDBOX_MEMORY"
BLOCKED = "network access is blocked while grading"


def limit_memory(n_bytes: int) -> None:
    """Cap this process's address space at ``n_bytes`` (never above the current hard limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        n_bytes = min(n_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (n_bytes, hard))


def is_local(address: Any) -> bool:
    """True for a Unix socket path or a loopback host (``127.0.0.1``, ``::1``, ``localhost``)."""
    if isinstance(address, (str, bytes)):
        return True
    host = address[0] if isinstance(address, tuple) and address else ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def block_network() -> None:
    """Make Python sockets refuse every address that is not on this machine."""
    original_connect, original_connect_ex, original_sendto = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.socket.sendto,
    )

    def connect(self: socket.socket, address: Any) -> None:
        if not is_local(address):
            raise ConnectionRefusedError(BLOCKED)
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not is_local(address):
            raise ConnectionRefusedError(BLOCKED)
        return original_connect_ex(self, address)

    def sendto(self: socket.socket, data: bytes, *args: Any) -> int:
        if not is_local(args[-1]):
            raise ConnectionRefusedError(BLOCKED)
        return original_sendto(self, data, *args)

    socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto


def main() -> None:
    # Run as a script, this file's folder is first on sys.path: put the working folder there
    # instead, as `python -m ipykernel_launcher` would, so that no course module shadows a student's.
    sys.path[0] = os.getcwd()
    memory = os.environ.get(MEMORY_ENV)
    if memory:
        limit_memory(int(memory))
    block_network()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
