"""How ``fm serve`` listens: which interfaces it may bind, whose client address it believes, how long it waits.

- ``check_bind``: an interface other than loopback with authentication off
  would hand an owner-level API to the network; refused unless the
  operator says ``--insecure``.
- ``uvicorn_options``: uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 by
  default, so any local client (a same-host proxy passing the header
  through, a pipeline's own http-request) could pick its rate-limit
  bucket. Here the headers count only from ``FM_TRUSTED_PROXIES``.
- ``header_timeout_protocol``: uvicorn has no deadline for a request's
  headers, so a client sending a byte every few seconds holds a
  connection forever; this h11 protocol closes it after
  ``FM_HEADER_TIMEOUT_S``. The body deadline (``FM_BODY_TIMEOUT_S``) is
  the app's own (``read_body``), so it holds under mangum as well.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from flowmason.kernel.errors import ConfigError

_LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, *, authenticated: bool, insecure: bool) -> None:
    """Refuse a non-loopback interface without authentication, unless ``--insecure``."""
    if authenticated or insecure or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve on {host}: authentication is off, so anyone who reaches this address "
        "would act as the owner of the default organization (run any pipeline, read every run)",
        field="--host",
        hint="turn authentication on (FM_AUTH=1), keep --host 127.0.0.1, "
             "or pass --insecure if a trusted network or proxy guards it",
    )


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """uvicorn.Config keywords from the settings: proxy trust and timeouts."""
    trusted = list(settings.trusted_proxies)
    return {
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "http": header_timeout_protocol(settings.header_timeout_s),
        "timeout_keep_alive": 5,
    }


def header_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol with a deadline on each request's headers."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _header_deadline: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._header_deadline = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # no complete request yet: nothing to answer

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the headers are in; the body has its own deadline

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
