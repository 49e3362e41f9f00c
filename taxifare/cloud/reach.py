"""Before any cloud SDK call: can this machine reach the hosts it will talk to at all?

Without a route to Google the SDKs retry for minutes and then print a long traceback (the
aiplatform SDK even tries to create the bucket first). A DNS lookup and a TCP connect, each
bounded, turn that into one line naming the host within seconds. With HTTPS_PROXY set the
proxy is what must answer.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from taxifare.errors import CloudError

TIMEOUT_SECONDS = 5.0
TOKEN_HOST = "oauth2.googleapis.com"  # where credentials are refreshed


def host_port(url_or_host: str) -> tuple[str, int]:
    """A URL (https://h:p/...) or a bare host[:port] as (host, port), 443 by default."""
    parts = urlsplit(url_or_host if "://" in url_or_host else f"https://{url_or_host}")
    default = 80 if parts.scheme == "http" else 443
    return parts.hostname or url_or_host, parts.port or default


def _proxy(host: str) -> str | None:
    no_proxy = [
        h.strip().lstrip(".") for h in (os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "").split(",")
    ]
    if any(h and (host == h or host.endswith("." + h)) for h in no_proxy):
        return None
    return os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")


def check(host: str, port: int = 443, timeout: float = TIMEOUT_SECONDS) -> None:
    """CloudError naming the host (or the proxy in the way) unless a TCP connection opens within `timeout`."""
    proxy = _proxy(host)
    target_host, target_port = host_port(proxy) if proxy else (host, port)
    via = f" through the proxy {target_host}:{target_port}" if proxy else ""
    fix = "check this machine's network and DNS (and HTTPS_PROXY), or the --api-endpoint given"
    # getaddrinfo has no timeout of its own: bound it from outside.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        addresses = pool.submit(socket.getaddrinfo, target_host, target_port, 0, socket.SOCK_STREAM).result(timeout)
    except concurrent.futures.TimeoutError:
        raise CloudError(f"cannot reach {host}:{port}{via}: the DNS lookup took over {timeout:.0f} s", fix) from None
    except OSError as err:
        raise CloudError(f"cannot reach {host}:{port}{via}: DNS lookup failed ({err.strerror or err})", fix) from None
    finally:
        pool.shutdown(wait=False)
    last: OSError | None = None
    for family, kind, proto, _, address in addresses[:4]:
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(timeout)
                s.connect(address)
                return
        except OSError as err:
            last = err
    reason = "timed out" if isinstance(last, TimeoutError) else (getattr(last, "strerror", None) or str(last))
    raise CloudError(f"cannot reach {host}:{port}{via}: {reason}", fix)


def check_all(urls: Iterable[str], timeout: float = TIMEOUT_SECONDS) -> None:
    for url in dict.fromkeys(urls):  # each once, in order
        check(*host_port(url), timeout=timeout)
