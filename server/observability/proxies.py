"""The client's address behind trusted proxies (TRUSTED_PROXIES, FORWARDED_HEADER).

Only a peer in TRUSTED_PROXIES is believed about whom it forwards for; anyone else's
forwarded headers are ignored, and the client is the peer. From a trusted peer, the client is
the right-most address of the forwarded chain that is not itself a trusted proxy: everything
to its left was written by the client (or by proxies nobody here vouches for). Only the header
FORWARDED_HEADER names is read (`X-Forwarded-For`, or RFC 7239's `Forwarded`): a proxy writes
one and passes the other through as the client sent it, so believing both would let the
client choose.

The chain is read from the right and only as far as the walk goes: an entry the trusted part
of the chain holds that is not an address is a 400 (the proxy is misconfigured, or the header
was mangled), while a client's own junk to the left of its address is never looked at (Squid
writes `unknown` there, say). aiohttp-remotes was the first choice, but it does not fit:
`XForwardedFiltered` never checks the peer, `XForwardedStrict` refuses an untrusted peer
with 400, both refuse a whole header for a client's junk on the left and a second
`X-Forwarded-For` line (HAProxy adds one rather than appending), and `ForwardedStrict` takes
`for="[2001:db8::1]:4711"` for an address as it is (a ValueError, then a 500). `Forwarded`
is parsed by aiohttp itself (``request.forwarded``), as aiohttp-remotes does.

Everything after the middleware sees the client as ``request.remote`` (the per-address
password limit, through ``auth.client_address``) and the access line as its ``client``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from ..middlewares import error_response
from .context import note_client

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
X_FORWARDED_FOR = "x-forwarded-for"
FORWARDED = "forwarded"
# FORWARDED_HEADER's values, and the headers they name.
HEADERS = {X_FORWARDED_FOR: "X-Forwarded-For", FORWARDED: "Forwarded"}

# RFC 7239 section 6: an obfuscated node or port ("_hidden", "_SEVKISEK"), kept as it is.
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")


class MalformedForwarding(ValueError):
    """A trusted proxy's forwarded header names no client."""


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def node(value: str | None) -> str:
    """A forwarded node without its port: `192.0.2.43`, `192.0.2.43:47011`, `2001:db8::1`,
    `[2001:db8::1]:4711` (Forwarded's quotes already removed); `unknown` and obfuscated
    identifiers as they are. Anything else raises MalformedForwarding."""
    if value is None:
        raise MalformedForwarding("an element without for=")
    value = value.strip()
    if value.lower() == "unknown":
        return "unknown"
    if _OBFUSCATED.fullmatch(value):
        return value
    port = None
    if value.startswith("["):  # an IPv6 address, and maybe its port
        host, bracket, rest = value[1:].partition("]")
        if not bracket or ":" not in host or (rest and not rest.startswith(":")):
            raise MalformedForwarding(f"not a node: {value[:60]!r}")
        port = rest[1:] if rest else None
    elif value.count(":") == 1:  # an IPv4 address and its port
        host, _, port = value.partition(":")
    else:  # a bare address (X-Forwarded-For writes IPv6 ones without brackets)
        host = value
    address = _address(host)
    if address is None or (port is not None and not _PORT.fullmatch(port)):
        raise MalformedForwarding(f"not a node: {value[:60]!r}")
    return str(address)


class TrustedProxies:
    def __init__(self, networks: Iterable[str] = (), header: str = X_FORWARDED_FOR) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks)
        if header not in HEADERS:
            raise ValueError(f"header must be one of {', '.join(HEADERS)}, got {header!r}")
        self.header = header

    def trusts(self, address: str | None) -> bool:
        if not self.networks or not address:
            return False
        ip = _address(address)  # None for a Unix socket's peer, or "unknown"
        return ip is not None and any(ip in network for network in self.networks)

    def chain(self, request: web.BaseRequest) -> list[str | None]:
        """The forwarded nodes, the client's side first, as the header has them (unparsed;
        None for a Forwarded element without for=)."""
        if self.header == FORWARDED:
            return [element.get("for") for element in request.forwarded]
        # Several lines are one list (RFC 9110 section 5.3); empty elements are skipped.
        return [item.strip() for line in request.headers.getall(hdrs.X_FORWARDED_FOR, ())
                for item in line.split(",") if item.strip()]

    def client(self, request: web.BaseRequest) -> str:
        """The client's address for a request from a trusted peer: the right-most node not
        itself a trusted proxy; the left-most if all are; the peer if there is no header."""
        client = request.remote or "unknown"
        for value in reversed(self.chain(request)):
            address = node(value)
            if not self.trusts(address):
                return address
            client = address
        return client


def forwarded_middleware(trusted: TrustedProxies) -> Middleware:
    """Right after the one that gives the request its id (so that a 400 names it)."""

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not trusted.trusts(request.remote):
            return await handler(request)
        try:
            client = trusted.client(request)
        except MalformedForwarding as exc:
            name = HEADERS[trusted.header]
            log.warning("malformed %s header from the proxy %s: %s", name, request.remote, exc)
            return error_response(400, "bad_request", f"The {name} header names no client",
                                  {"header": name})
        note_client(client)
        return await handler(request.clone(remote=client))

    return forwarded
