"""Which addresses the HTTP operators may connect to: decided on the resolved address, at connect time.

A server (``fm serve``, the Lambda API and worker) must not let a pipeline
read its own loopback, its private network or the cloud metadata service
(SSRF). Checking the URL's host before the request is not enough: the name
can resolve differently a moment later (DNS rebinding), a redirect can lead
anywhere, and ``127.1``, ``2130706433`` or ``[::ffff:127.0.0.1]`` are
loopback too. So the check sits where the socket is opened: an
``httpcore`` network backend (``GuardedBackend``) resolves the host once,
classifies every address, refuses the connection before any packet is sent
when one is not allowed, and otherwise connects to the numeric address it
checked (TLS still verifies the name). Every hop of a redirect opens its
connection through it.

Policy (``policy()``, from kernel/settings.py):
- ``FM_HTTP_DENY_PRIVATE``: refuse loopback, private (RFC 1918), link-local
  (169.254/16 with the metadata address, fe80::/10), unique-local
  (fc00::/7), shared/CGNAT (100.64/10), multicast, unspecified, reserved and
  the IPv4-mapped, 6to4 and NAT64 forms of those. Off for ``fm run``; the
  server entry points turn it on by default (``use_server_defaults``).
- ``FM_HTTP_ALLOW``: comma-separated exceptions: CIDRs or addresses
  (``10.0.0.0/8``, ``127.0.0.1``), host names (``search.internal``), each
  with an optional ``:port`` (``127.0.0.1:8080``, ``[::1]:8080``).

A refusal is decided before connecting, so it reads and times the same
whether anything listens there or not. When the guard is off and a local
address is used, ``Connection.local`` says so and the operator logs which
setting governs it.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable

from flowmason.kernel.errors import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_METADATA = ipaddress.IPv4Address("169.254.169.254")

GOVERNED = "FM_HTTP_DENY_PRIVATE governs this (on by default under fm serve and the Lambda functions, off for fm run)"


def unwrap(addr: Address) -> Address:
    """The IPv4 address inside IPv4-mapped (::ffff:a.b.c.d), 6to4 and NAT64 forms; else ``addr``."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in _NAT64:
            return ipaddress.IPv4Address(addr.packed[-4:])
    return addr


def classify(addr: Address) -> str | None:
    """What kind of non-public address this is ("loopback", "private", ...), or None when it is public."""
    addr = unwrap(addr)
    if addr.is_loopback:
        return "loopback"
    if addr.is_unspecified:
        return "unspecified"
    if addr == _METADATA:
        return "cloud metadata"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return "shared (CGNAT)"
    if isinstance(addr, ipaddress.IPv6Address) and addr in _UNIQUE_LOCAL:
        return "unique-local"
    if addr.is_private:
        return "private"
    if addr.is_reserved or not addr.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class Rule:
    """One FM_HTTP_ALLOW entry: a network or a host name, and a port (None: any)."""

    network: Network | None = None
    host: str | None = None
    port: int | None = None

    def allows(self, host: str, addr: Address, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return host.lower().rstrip(".") == self.host
        assert self.network is not None
        return addr in self.network or unwrap(addr) in self.network


def parse_rule(text: str) -> Rule:
    """``10.0.0.0/8``, ``127.0.0.1:8080``, ``[::1]:8080``, ``::1``, ``search.internal:443``."""
    entry = text.strip()
    port: int | None = None
    if entry.startswith("["):
        inner, _, rest = entry[1:].partition("]")
        entry = inner
        if rest.startswith(":"):
            port = _port(rest[1:], text)
        elif rest:
            raise _bad_rule(text)
    elif entry.count(":") == 1:  # host:port or a.b.c.d:port (an IPv6 address has several colons)
        entry, raw_port = entry.split(":")
        port = _port(raw_port, text)
    try:
        return Rule(network=ipaddress.ip_network(entry, strict=False), port=port)
    except ValueError:
        pass
    name = entry.lower().rstrip(".")
    if not name or any(c in name for c in "/ @") or name.replace(".", "").isdigit():
        raise _bad_rule(text)
    return Rule(host=name, port=port)


def _port(raw: str, text: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise _bad_rule(text)
    return int(raw)


def _bad_rule(text: str) -> ConfigError:
    return ConfigError(f"FM_HTTP_ALLOW entry {text!r} is not a CIDR, address or host name with an optional :port",
                       field="FM_HTTP_ALLOW",
                       hint="write entries like 10.0.0.0/8, 127.0.0.1:8080, [::1]:8080 or search.internal:443")


@dataclass(frozen=True)
class Policy:
    deny_private: bool = False
    allow: tuple[Rule, ...] = ()

    def refusal(self, host: str, addr: Address, port: int) -> str | None:
        """The kind of address when this connection must be refused, else None."""
        kind = classify(addr)
        if kind is None or not self.deny_private:
            return None
        if any(rule.allows(host, addr, port) for rule in self.allow):
            return None
        return kind


_policies: dict[tuple[bool, tuple[str, ...]], Policy] = {}


def policy() -> Policy:
    """The policy of the current settings (parsed once per distinct value)."""
    from flowmason.kernel.settings import get_settings

    settings = get_settings()
    key = (settings.http_deny_private, settings.http_allow)
    found = _policies.get(key)
    if found is None:
        found = _policies[key] = Policy(key[0], tuple(parse_rule(t) for t in key[1]))
    return found


class Refused(Exception):
    """A connection the policy does not allow; raised before anything is sent."""

    def __init__(self, host: str, port: int, kind: str, addr: Address) -> None:
        self.host, self.port, self.kind = host, port, kind
        super().__init__(f"{_bracket(host)}:{port} is a non-public address ({kind}) and this host refuses those")
        # the rule to suggest: the name as written, or the address for spellings like 127.1 or 2130706433
        try:
            rule = parse_rule(host) if _literal(host) is None else None
        except ConfigError:
            rule = None
        self.allow = f"{_bracket(host if rule is not None else str(_literal(host) or addr))}:{port}"

    @property
    def hint(self) -> str:
        return f"{GOVERNED}; to allow this target set FM_HTTP_ALLOW={self.allow}, or use a public address"


def _bracket(host: str) -> str:
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


@dataclass
class Connections:
    """What one request's connections did: the non-public addresses used while the guard was off."""

    local: list[tuple[str, str]] = field(default_factory=list)  # (host, kind)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[Address]:
    import anyio

    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        import httpcore

        raise httpcore.ConnectError(str(exc)) from exc  # httpx reports it like any unknown name
    found: list[Address] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr not in found:
            found.append(addr)
    return found


def guarded_backend(guard: Policy, seen: Connections) -> Any:
    """An ``httpcore.AsyncNetworkBackend`` that checks every address before it connects."""
    import httpcore

    class GuardedBackend(httpcore.AsyncNetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.AnyIOBackend()

        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                              local_address: str | None = None,
                              socket_options: Iterable[Any] | None = None) -> Any:
            addresses = await _resolve(host, port)
            # one refused address refuses the name: an answer mixing public and private addresses is an attack
            for addr in addresses:
                kind = guard.refusal(host, addr, port)
                if kind is not None:
                    raise Refused(host, port, kind, addr)
            for addr in addresses:
                kind = classify(addr)
                if kind is not None:
                    seen.local.append((host, kind))
                    break
            error: Exception | None = None
            for addr in addresses:  # connect to the checked address, never to the name again
                try:
                    return await self._inner.connect_tcp(str(addr), port, timeout=timeout,
                                                         local_address=local_address, socket_options=socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    error = exc
            assert error is not None
            raise error

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    return GuardedBackend()


def transport(ssl_context: Any, guard: Policy, seen: Connections) -> Any:
    """An ``httpx.AsyncHTTPTransport`` whose connections go through ``guarded_backend``."""
    import httpcore
    import httpx

    base = httpx.AsyncHTTPTransport(verify=ssl_context)
    # httpx offers no argument for the network backend: give its transport a pool that has ours
    base._pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context, keepalive_expiry=5.0,
                                              network_backend=guarded_backend(guard, seen))
    return base
