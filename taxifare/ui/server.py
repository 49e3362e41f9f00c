"""Serving the console: uvicorn on a socket bound here, on loopback unless told otherwise.

The socket is bound before uvicorn starts, so the URL printed is the one that answers (with
`--port 0`, the port the system chose). A non-loopback address is refused unless the caller says
it knows the console has no authentication (`allow_remote`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from taxifare.errors import UsageError

NO_AUTH = (
    "the console has no authentication: anyone who can reach {host}:{port} can read every run, log, "
    "parameter and model it shows"
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int, allow_remote: bool) -> socket.socket:
    """A listening socket on host:port; a UsageError naming the fix when it cannot be had."""
    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"--host {host} is not a loopback address, and {NO_AUTH.format(host=host, port=port)}",
            "keep the default (127.0.0.1) and use an SSH tunnel, or add --allow-remote to bind there anyway",
        )
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as err:
        raise UsageError(f"--host {host}: {err}", "give an address of this machine, e.g. 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        fix = "choose another --port (0 picks a free one)" if err.errno == 98 else "check --host and --port"
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror}", fix) from None
    sock.set_inheritable(True)
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(sock: socket.socket, runs_root: str, registry: str, loopback_only: bool,
          on_ready: Callable[[str], None] = print) -> None:  # fmt: skip
    """Serve the console on `sock` until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    from taxifare.ui.app import create_app
    from taxifare.ui.lingering import LingeringH11Protocol

    app = create_app(runs_root, registry, loopback_only=loopback_only)
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, http=LingeringH11Protocol,
                            timeout_graceful_shutdown=2, h11_max_incomplete_event_size=16 << 10)  # fmt: skip
    on_ready(url(sock))
    uvicorn.Server(config).run(sockets=[sock])
