"""The SSRF guard for the probes: which hosts and addresses may be contacted.

Three layers, from pure to I/O:

1. :func:`classify_address` (pure) sorts an IP address into public, loopback,
   private (RFC 1918, IPv6 ULA, NAT64 local-use), shared/CGNAT, link-local,
   cloud metadata, unspecified, multicast or reserved. IPv4 addresses hidden in
   IPv6 (``::ffff:127.0.0.1``, SIIT, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
   Teredo) are judged by the IPv4 address they carry.
2. :class:`AddressPolicy` (pure) decides: host name patterns
   (``allow_hosts``), address ranges that are always allowed (``allow_cidrs``)
   and ``allow_private`` (the command line's default: it trusts its operator).
   Everything that is not public is refused unless allowed.
3. :func:`check_target` resolves a name through the event loop's
   ``getaddrinfo`` (or an injected :data:`Resolver`), checks *every* address,
   and returns a :class:`CheckedTarget`. :class:`GuardedTransport` is an httpx
   transport that connects only to those checked addresses.

Why a pinned network backend (and not "rewrite the URL to the IP")?
Checking an address and then letting the HTTP client resolve the name again
leaves a window for DNS rebinding: the second answer can be 127.0.0.1. So the
connection must go to the address that was checked. httpcore lets a transport
supply its own *network backend*: :class:`PinnedBackend` receives the URL's host
name from httpcore and opens the TCP connection to the checked IP instead.
Everything above TCP is untouched — httpcore still runs TLS with
``server_hostname`` set to the URL's host, so SNI is right and certificate
verification checks the *name*; the ``Host`` header, the connection pool key
and the URLs in the redirect chain stay the real ones. Rewriting the URL to the
IP would need a hand-set ``Host`` header and the ``sni_hostname`` extension and
would show IPs in every URL; httpx itself has no resolver hook. One transport
serves one checked host: each redirect hop is checked and gets its own
transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

import httpcore
import httpx

from bot.errors import FirebellError, UserError

if typing.TYPE_CHECKING:
    from bot.settings import DiagnosticsConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``await resolver(host, port)`` → the host's IP addresses, preferred first."""


class AddressClass(StrEnum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    SHARED = "shared (CGNAT)"
    LINK_LOCAL = "link-local"
    METADATA = "cloud metadata"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"


# Instance metadata services: refused even inside an allowed CIDR unless that
# CIDR names the single address (a broad allow never opens them by accident).
METADATA_ADDRESSES: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "AWS/GCP/Azure/OCI/DigitalOcean instance metadata",
    ipaddress.ip_address("169.254.170.2"): "AWS ECS task metadata",
    ipaddress.ip_address("169.254.170.23"): "AWS EKS pod identity",
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud metadata",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud metadata",
    ipaddress.ip_address("fd00:ec2::254"): "AWS instance metadata (IPv6)",
    ipaddress.ip_address("fd00:ec2::23"): "AWS EKS pod identity (IPv6)",
}
METADATA_HOSTNAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)

_V4_RANGES: tuple[tuple[ipaddress.IPv4Network, AddressClass], ...] = tuple(
    (ipaddress.IPv4Network(cidr), klass)
    for cidr, klass in (
        ("0.0.0.0/8", AddressClass.UNSPECIFIED),
        ("127.0.0.0/8", AddressClass.LOOPBACK),
        ("10.0.0.0/8", AddressClass.PRIVATE),
        ("172.16.0.0/12", AddressClass.PRIVATE),
        ("192.168.0.0/16", AddressClass.PRIVATE),
        ("100.64.0.0/10", AddressClass.SHARED),
        ("169.254.0.0/16", AddressClass.LINK_LOCAL),
        ("224.0.0.0/4", AddressClass.MULTICAST),
        ("240.0.0.0/4", AddressClass.RESERVED),  # includes 255.255.255.255
        ("192.0.0.0/24", AddressClass.RESERVED),  # IETF protocol assignments
        ("192.0.2.0/24", AddressClass.RESERVED),  # documentation
        ("198.51.100.0/24", AddressClass.RESERVED),
        ("203.0.113.0/24", AddressClass.RESERVED),
        ("198.18.0.0/15", AddressClass.RESERVED),  # benchmarking
        ("192.88.99.0/24", AddressClass.RESERVED),  # deprecated 6to4 relay anycast
    )
)
_V6_RANGES: tuple[tuple[ipaddress.IPv6Network, AddressClass], ...] = tuple(
    (ipaddress.IPv6Network(cidr), klass)
    for cidr, klass in (
        ("::/128", AddressClass.UNSPECIFIED),
        ("::1/128", AddressClass.LOOPBACK),
        ("fc00::/7", AddressClass.PRIVATE),  # unique local
        ("fec0::/10", AddressClass.PRIVATE),  # deprecated site-local
        ("64:ff9b:1::/48", AddressClass.PRIVATE),  # NAT64 local use
        ("fe80::/10", AddressClass.LINK_LOCAL),
        ("ff00::/8", AddressClass.MULTICAST),
        ("::/96", AddressClass.RESERVED),  # deprecated IPv4-compatible
        ("100::/64", AddressClass.RESERVED),  # discard
        ("2001:db8::/32", AddressClass.RESERVED),  # documentation
        ("3fff::/20", AddressClass.RESERVED),  # documentation
        ("2001:10::/28", AddressClass.RESERVED),  # ORCHID
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")


@dataclass(frozen=True)
class AddressVerdict:
    """The class of one address and whether the policy lets the probe connect."""

    address: str
    allowed: bool
    klass: AddressClass
    description: str
    """E.g. ``loopback``, ``private (IPv4-mapped 10.0.0.1)``, ``cloud metadata (AWS …)``."""


def parse_ip(text: str) -> IPAddress | None:
    """An IP address from a URL host or resolver answer (brackets and zone ids
    allowed), or None when ``text`` is a name."""
    candidate = text.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, with the name of the form."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _SIIT:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "IPv4-translated"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    if address.teredo is not None:
        return address.teredo[1], "Teredo"
    return None


def classify_address(address: IPAddress) -> tuple[AddressClass, str]:
    """The address class and a short description (pure, table-driven so the
    answer does not change with the Python version's ``is_private`` rules)."""
    if address in METADATA_ADDRESSES:
        return AddressClass.METADATA, f"cloud metadata ({METADATA_ADDRESSES[address]})"
    if isinstance(address, ipaddress.IPv4Address):
        for network, klass in _V4_RANGES:
            if address in network:
                return klass, klass.value
        return AddressClass.PUBLIC, "public"
    embedded = embedded_ipv4(address)
    if embedded is not None:
        inner, form = embedded
        klass, description = classify_address(inner)
        # Mapped, translated and NAT64 forms reach exactly that IPv4 address;
        # 6to4 and Teredo addresses are global IPv6 and judged as such below.
        if klass is not AddressClass.PUBLIC or form in ("IPv4-mapped", "IPv4-translated", "NAT64"):
            return klass, f"{description} ({form} {inner})"
    for network6, klass in _V6_RANGES:
        if address in network6:
            return klass, klass.value
    if address not in _GLOBAL_UNICAST:
        return AddressClass.RESERVED, "reserved (outside IPv6 global unicast)"
    return AddressClass.PUBLIC, "public"


class TargetRefused(UserError):
    """The guard refused a host or address; the message says which and why."""

    def __init__(self, message: str, *, host: str, address: str | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.address = address


class ResolutionFailed(FirebellError):
    """The host name does not resolve (the message carries the resolver's reason)."""


_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address literal: this machine, never the network."""
    if host == "localhost":
        return True
    address = parse_ip(host)
    return address is not None and address.is_loopback


def normalize_host(host: str) -> str:
    """Lower-case, without brackets or the trailing dot of a fully qualified name."""
    return host.strip().strip("[]").rstrip(".").lower()


def validate_host_pattern(pattern: str) -> str:
    """``example.com`` (exactly that name) or ``*.example.com`` (any name below
    it, not ``example.com`` itself); ``ValueError`` otherwise."""
    text = normalize_host(pattern)
    labels = text[2:].split(".") if text.startswith("*.") else text.split(".")
    if not text or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"host pattern {pattern!r} must be a name such as example.com or *.example.com "
            "(punycode for international names)"
        )
    return text


def host_matches(host: str, pattern: str) -> bool:
    """Whether ``host`` matches one :func:`validate_host_pattern` pattern."""
    host = normalize_host(host)
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def parse_cidr(text: str) -> IPNetwork:
    """A network such as ``10.0.0.0/8`` or ``2001:db8::/32`` (a bare address is a
    single-address network; host bits are ignored); ``ValueError`` otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IP network (CIDR such as 10.0.0.0/8): {exc}") from exc


@dataclass(frozen=True)
class AddressPolicy:
    """What a probe may contact.

    * ``allow_hosts`` — host name patterns; when given, only matching hosts (and
      IP literals inside ``allow_cidrs``) are probed. Empty: any host name.
    * ``allow_cidrs`` — addresses in these networks are allowed even when they
      are private, loopback, link-local …; metadata addresses only by a
      single-address entry (``169.254.169.254/32``).
    * ``allow_private`` — allow every address class (the command line's
      default); host patterns still apply.

    The checks hold for every address a name resolves to and for every hop of
    a redirect chain. Build one with :meth:`build` to validate text input.
    """

    allow_hosts: tuple[str, ...] = ()
    allow_cidrs: tuple[IPNetwork, ...] = ()
    allow_private: bool = False

    @classmethod
    def build(
        cls, *, allow_hosts: Iterable[str] = (), allow_cidrs: Iterable[str] = (), allow_private: bool = False
    ) -> AddressPolicy:
        """A policy from text; a bad pattern or CIDR is a ``UserError``."""
        try:
            hosts = tuple(validate_host_pattern(pattern) for pattern in allow_hosts)
            cidrs = tuple(parse_cidr(cidr) for cidr in allow_cidrs)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        return cls(allow_hosts=hosts, allow_cidrs=cidrs, allow_private=allow_private)

    def _in_allowed_cidr(self, address: IPAddress, klass: AddressClass) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        for network in self.allow_cidrs:
            for candidate in candidates:
                if candidate.version == network.version and candidate in network:
                    if klass is AddressClass.METADATA and network.num_addresses != 1:
                        continue
                    return True
        return False

    def check_address(self, address: str | IPAddress) -> AddressVerdict:
        """Whether the probe may connect to ``address``."""
        parsed = parse_ip(address) if isinstance(address, str) else address
        if parsed is None:
            raise ValueError(f"{address!r} is not an IP address")
        klass, description = classify_address(parsed)
        allowed = klass is AddressClass.PUBLIC or self.allow_private or self._in_allowed_cidr(parsed, klass)
        return AddressVerdict(str(parsed), allowed, klass, description)

    def check_host(self, host: str) -> None:
        """Refuse a host name before resolving it (patterns, metadata names)."""
        name = normalize_host(host)
        literal = parse_ip(name)
        if literal is None and name in METADATA_HOSTNAMES and not self.allow_private:
            raise TargetRefused(f"refused {name}: a cloud metadata host name", host=name)
        if not self.allow_hosts:
            return
        if literal is not None:
            if self._in_allowed_cidr(literal, classify_address(literal)[0]):
                return
        elif any(host_matches(name, pattern) for pattern in self.allow_hosts):
            return
        raise TargetRefused(
            f"refused {name}: not an allowed host (allowed: {', '.join(self.allow_hosts)})", host=name
        )

    def describe(self) -> str:
        parts = ["any address" if self.allow_private else "public addresses"]
        if self.allow_cidrs:
            parts.append("plus " + ", ".join(str(network) for network in self.allow_cidrs))
        hosts = ", ".join(self.allow_hosts) if self.allow_hosts else "any host"
        return f"{hosts}; {' '.join(parts)}"


OPEN_POLICY = AddressPolicy(allow_private=True)
"""Everything allowed: the command line's default (it trusts its operator)."""


def chat_policy(config: DiagnosticsConfig) -> AddressPolicy:
    """The guarded policy for probes asked for from Slack (``[diagnostics]``)."""
    return AddressPolicy.build(allow_hosts=config.allow_hosts, allow_cidrs=config.allow_cidrs)


async def system_resolver(host: str, port: int) -> list[str]:
    """The event loop's ``getaddrinfo``: addresses in the system's preference order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class CheckedTarget:
    """A host whose addresses all passed the policy; connect only to these."""

    host: str
    port: int
    addresses: tuple[str, ...]
    dns_seconds: float | None
    """Time spent resolving; None for an IP literal."""


async def check_target(
    host: str, port: int, policy: AddressPolicy, resolver: Resolver = system_resolver
) -> CheckedTarget:
    """Check the name, resolve it, check every address (a name with one private
    address among public ones is refused: the resolver's order is not ours).

    Raises :class:`TargetRefused` or :class:`ResolutionFailed`.
    """
    name = normalize_host(host)
    policy.check_host(name)
    literal = parse_ip(name)
    dns_seconds: float | None = None
    if literal is not None:
        addresses: Sequence[str] = (str(literal),)
    else:
        started = time.monotonic()
        try:
            addresses = await resolver(name, port)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ResolutionFailed(f"{name} does not resolve: {reason}") from exc
        dns_seconds = time.monotonic() - started
        if not addresses:
            raise ResolutionFailed(f"{name} does not resolve: no addresses")
    for address in addresses:
        verdict = policy.check_address(address)
        if not verdict.allowed:
            via = "" if literal is not None else f"{name} resolves to "
            raise TargetRefused(
                f"refused {via}{verdict.address}: {verdict.description} address",
                host=name,
                address=verdict.address,
            )
    return CheckedTarget(
        host=name,
        port=port,
        addresses=tuple(str(parse_ip(address)) for address in addresses),
        dns_seconds=dns_seconds,
    )


# ---------------------------------------------------------------- connecting


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects ``target.host`` to the checked
    addresses (in order, first that accepts) and refuses everything else."""

    def __init__(self, target: CheckedTarget, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._target = target
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if normalize_host(host) != self._target.host or port != self._target.port:
            raise httpcore.ConnectError(f"refused {host}:{port}: not the checked target")
        failure: Exception | None = None
        for address in self._target.addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is never empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: probes do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore exceptions → httpx exceptions, most specific first (the same mapping
# httpx's own transport applies).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise _map(exc) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise _map(exc) from exc


def _map(exc: Exception) -> httpx.TransportError:
    for core, mapped in _ERRORS:
        if isinstance(exc, core):
            return mapped(str(exc))
    return httpx.TransportError(str(exc))


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            with _mapped_errors():
                await close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport for one :class:`CheckedTarget` (see the module notes).

    Use it with ``httpx.AsyncClient(transport=…, trust_env=False)``: with
    ``trust_env`` on, proxy variables would mount proxy transports that bypass
    this one. Requests for any other host are refused.
    """

    def __init__(self, target: CheckedTarget, ssl_context: ssl.SSLContext) -> None:
        self._target = target
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            network_backend=PinnedBackend(target),
            max_keepalive_connections=0,
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        if normalize_host(url.host) != self._target.host or port != self._target.port:
            raise httpx.ConnectError(f"refused {url.host}:{port}: not the checked target", request=request)
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
