"""Free and taken TCP ports on the loopback interface.

>>> port = free_port()
>>> 1024 < port < 65536 and not port_in_use(port) or port_in_use(port) is False
True
"""

import socket

from streams.exceptions import ServiceError

HOST = "127.0.0.1"


def free_port() -> int:
    """A port the OS says is free right now on 127.0.0.1."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free right now (held together while chosen).

    >>> a, b = free_ports(2)
    >>> a != b
    True
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(port: int) -> bool:
    """True when something already listens on (or holds) ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


def claim_port(port: int | None, service: str) -> int:
    """The port to use for ``service``: ``port`` if given and free, else a free one.

    Raises:
        ServiceError: the requested port is taken (one clear line).
    """
    if port is None:
        return free_port()
    if port_in_use(port):
        raise ServiceError(f"port {port} for {service} is already in use; choose another port")
    return port
