"""The SSRF guard: address classes, policy decisions, resolution and pinning."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence

import httpx
import pytest

from bot.diagnostics.http_probe import ProbeOptions, probe_http
from bot.diagnostics.ssrf import (
    AddressClass,
    AddressPolicy,
    CheckedTarget,
    GuardedTransport,
    ResolutionFailed,
    TargetRefused,
    chat_policy,
    check_target,
    classify_address,
    host_matches,
    parse_ip,
    validate_host_pattern,
)
from bot.errors import UserError
from bot.settings import DiagnosticsConfig
from tests.diagnostics.servers import ProbeTarget

GUARDED = AddressPolicy()


@pytest.fixture
def target() -> Iterator[ProbeTarget]:
    with ProbeTarget() as server:
        yield server


class FakeResolver:
    """Answers from a table and counts the questions."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


# ---------------------------------------------------------------- address classes


@pytest.mark.parametrize(
    ("address", "klass"),
    [
        ("93.184.216.34", AddressClass.PUBLIC),
        ("8.8.8.8", AddressClass.PUBLIC),
        ("2606:4700:4700::1111", AddressClass.PUBLIC),
        ("127.0.0.1", AddressClass.LOOPBACK),
        ("127.255.0.9", AddressClass.LOOPBACK),
        ("::1", AddressClass.LOOPBACK),
        ("10.1.2.3", AddressClass.PRIVATE),
        ("172.16.0.1", AddressClass.PRIVATE),
        ("172.31.255.254", AddressClass.PRIVATE),
        ("192.168.1.1", AddressClass.PRIVATE),
        ("fd12:3456:789a::1", AddressClass.PRIVATE),  # unique local
        ("fc00::1", AddressClass.PRIVATE),
        ("64:ff9b:1::1", AddressClass.PRIVATE),  # NAT64 local use
        ("100.64.0.1", AddressClass.SHARED),  # CGNAT
        ("100.127.255.254", AddressClass.SHARED),
        ("169.254.1.1", AddressClass.LINK_LOCAL),
        ("fe80::1", AddressClass.LINK_LOCAL),
        ("fe80::1%eth0", AddressClass.LINK_LOCAL),
        ("169.254.169.254", AddressClass.METADATA),
        ("169.254.170.2", AddressClass.METADATA),
        ("100.100.100.200", AddressClass.METADATA),
        ("fd00:ec2::254", AddressClass.METADATA),
        ("0.0.0.0", AddressClass.UNSPECIFIED),
        ("0.1.2.3", AddressClass.UNSPECIFIED),
        ("::", AddressClass.UNSPECIFIED),
        ("224.0.0.1", AddressClass.MULTICAST),
        ("ff02::1", AddressClass.MULTICAST),
        ("255.255.255.255", AddressClass.RESERVED),
        ("240.0.0.1", AddressClass.RESERVED),
        ("192.0.2.10", AddressClass.RESERVED),
        ("198.18.0.1", AddressClass.RESERVED),
        ("2001:db8::1", AddressClass.RESERVED),
        ("::127.0.0.1", AddressClass.RESERVED),  # deprecated IPv4-compatible
        ("4000::1", AddressClass.RESERVED),  # outside global unicast
        # IPv4 carried inside IPv6 is judged by the IPv4 address
        ("::ffff:127.0.0.1", AddressClass.LOOPBACK),
        ("::ffff:7f00:1", AddressClass.LOOPBACK),
        ("0:0:0:0:0:ffff:10.0.0.1", AddressClass.PRIVATE),
        ("::ffff:169.254.169.254", AddressClass.METADATA),
        ("::ffff:a9fe:a9fe", AddressClass.METADATA),
        ("::ffff:0:127.0.0.1", AddressClass.LOOPBACK),  # IPv4-translated (SIIT)
        ("64:ff9b::10.0.0.1", AddressClass.PRIVATE),  # NAT64
        ("64:ff9b::a9fe:a9fe", AddressClass.METADATA),
        ("2002:7f00:1::1", AddressClass.LOOPBACK),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", AddressClass.PRIVATE),  # 6to4 of 192.168.1.1
        ("2001::80ff:fffe", AddressClass.LOOPBACK),  # Teredo client 127.0.0.1 (obfuscated)
        ("::ffff:8.8.8.8", AddressClass.PUBLIC),
        ("64:ff9b::8.8.8.8", AddressClass.PUBLIC),
        ("2002:808:808::1", AddressClass.PUBLIC),
    ],
)
def test_classify_address(address: str, klass: AddressClass) -> None:
    parsed = parse_ip(address)
    assert parsed is not None
    assert classify_address(parsed)[0] is klass
    decision = GUARDED.check_address(address)
    assert decision.allowed is (klass is AddressClass.PUBLIC)
    assert AddressPolicy(allow_private=True).check_address(address).allowed


def test_embedded_forms_say_what_they_carry() -> None:
    decision = GUARDED.check_address("::ffff:169.254.169.254")
    assert not decision.allowed
    assert decision.description.startswith("cloud metadata")
    assert decision.description.endswith("(IPv4-mapped 169.254.169.254)")


def test_allowed_cidrs_open_internal_ranges_but_not_metadata_by_accident() -> None:
    policy = AddressPolicy.build(allow_cidrs=["10.0.0.0/8", "169.254.0.0/16", "fd00::/8"])
    assert policy.check_address("10.20.30.40").allowed
    assert policy.check_address("::ffff:10.0.0.1").allowed  # mapped form of an allowed address
    assert not policy.check_address("192.168.0.1").allowed
    assert policy.check_address("169.254.1.1").allowed
    assert not policy.check_address("169.254.169.254").allowed  # broad range: metadata stays shut
    assert not policy.check_address("fd00:ec2::254").allowed
    exact = AddressPolicy.build(allow_cidrs=["169.254.169.254/32"])
    assert exact.check_address("169.254.169.254").allowed


# ---------------------------------------------------------------- host names


@pytest.mark.parametrize(
    ("host", "pattern", "matches"),
    [
        ("a.example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("badexample.com", "*.example.com", False),
        ("example.com.evil.net", "*.example.com", False),
        ("EXAMPLE.com.", "example.com", True),
        ("www.example.com", "example.com", False),
    ],
)
def test_host_patterns(host: str, pattern: str, matches: bool) -> None:
    assert host_matches(host, validate_host_pattern(pattern)) is matches


@pytest.mark.parametrize(
    "pattern", ["http://example.com", "*", "ex*ample.com", "a..b", "", "example.com/path"]
)
def test_bad_patterns_and_cidrs_are_user_errors(pattern: str) -> None:
    with pytest.raises(UserError):
        AddressPolicy.build(allow_hosts=[pattern])
    with pytest.raises(UserError):
        AddressPolicy.build(allow_cidrs=["10.0.0.0/33"])


def test_allow_hosts_restricts_names_and_ip_literals() -> None:
    policy = AddressPolicy.build(allow_hosts=["*.example.com"], allow_cidrs=["203.0.113.0/24"])
    policy.check_host("www.example.com")
    policy.check_host("203.0.113.7")  # an IP literal passes through allow_cidrs
    with pytest.raises(TargetRefused, match="not an allowed host"):
        policy.check_host("example.org")
    with pytest.raises(TargetRefused):
        policy.check_host("198.51.100.1")


def test_metadata_host_names_are_refused_without_resolving() -> None:
    with pytest.raises(TargetRefused, match="metadata"):
        GUARDED.check_host("metadata.google.internal.")


def test_chat_policy_comes_from_the_diagnostics_settings() -> None:
    policy = chat_policy(DiagnosticsConfig(allow_hosts=["*.example.com"], allow_cidrs=["10.0.0.0/8"]))
    assert not policy.allow_private
    assert policy.allow_hosts == ("*.example.com",)
    assert policy.check_address("10.1.1.1").allowed
    assert not policy.check_address("127.0.0.1").allowed


# ---------------------------------------------------------------- resolution


async def test_names_resolving_to_private_addresses_are_refused() -> None:
    resolver = FakeResolver(
        {
            "intranet.example.com": ["10.0.0.5"],
            "mixed.example.com": ["93.184.216.34", "169.254.169.254"],
            "v6.example.com": ["::ffff:127.0.0.1"],
            "public.example.com": ["93.184.216.34", "2606:4700::1111"],
        }
    )
    with pytest.raises(
        TargetRefused, match=r"intranet\.example\.com resolves to 10\.0\.0\.5: private"
    ) as info:
        await check_target("intranet.example.com", 443, GUARDED, resolver)
    assert info.value.address == "10.0.0.5"
    with pytest.raises(TargetRefused, match="cloud metadata"):
        await check_target("mixed.example.com", 443, GUARDED, resolver)
    with pytest.raises(TargetRefused, match="loopback"):
        await check_target("v6.example.com", 443, GUARDED, resolver)
    checked = await check_target("public.example.com", 443, GUARDED, resolver)
    assert checked.addresses == ("93.184.216.34", "2606:4700::1111")
    assert checked.dns_seconds is not None
    opened = AddressPolicy.build(allow_cidrs=["10.0.0.0/8"])
    assert (await check_target("intranet.example.com", 80, opened, resolver)).addresses == ("10.0.0.5",)


async def test_refused_names_and_literals_are_not_resolved() -> None:
    resolver = FakeResolver({})
    policy = AddressPolicy.build(allow_hosts=["*.example.com"])
    with pytest.raises(TargetRefused):
        await check_target("evil.test", 80, policy, resolver)
    with pytest.raises(TargetRefused, match=r"refused 127\.0\.0\.1: loopback"):
        await check_target("[127.0.0.1]", 80, GUARDED, resolver)
    literal = await check_target("[2606:4700::1111]", 80, GUARDED, resolver)
    assert literal.dns_seconds is None
    assert resolver.calls == []


async def test_resolution_failures() -> None:
    resolver = FakeResolver({"empty.example.com": []})
    with pytest.raises(ResolutionFailed, match="does not resolve: Name or service not known"):
        await check_target("nowhere.example.com", 80, GUARDED, resolver)
    with pytest.raises(ResolutionFailed, match="no addresses"):
        await check_target("empty.example.com", 80, GUARDED, resolver)


async def test_numeric_host_forms_resolve_to_what_they_mean() -> None:
    # 2130706433 and 0x7f.1 are 127.0.0.1 to getaddrinfo; the check sees the result.
    for host in ("2130706433", "0x7f.1", "localhost"):
        with pytest.raises(TargetRefused, match="loopback"):
            await check_target(host, 80, GUARDED)


# ---------------------------------------------------------------- probes under the guard


async def test_localhost_is_refused_before_any_request(target: ProbeTarget) -> None:
    result = await probe_http(f"http://localhost:{target.port}/ok", policy=GUARDED)
    assert result.refused
    assert result.main.failure is not None
    assert result.main.failure.message == "refused localhost resolves to 127.0.0.1: loopback address"
    assert result.origin is None
    assert target.requests == []


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("/to-metadata", "refused 169.254.169.254: cloud metadata"),
        ("/to-mapped", "refused ::ffff:a9fe:a9fe: cloud metadata"),
    ],
)
async def test_redirect_to_metadata_is_refused_at_the_hop(
    target: ProbeTarget, path: str, refused: str
) -> None:
    policy = AddressPolicy.build(allow_cidrs=["127.0.0.1/32"])
    result = await probe_http(f"{target.url}{path}", policy=policy, options=ProbeOptions(cache_bust=False))
    hops = result.main.hops
    assert [hop.status for hop in hops] == [302, None]
    assert hops[1].failure is not None
    assert hops[1].failure.kind == "refused"
    assert hops[1].failure.message.startswith(refused)
    assert not result.refused  # the first hop ran
    assert len(target.calls(path)) == 1


async def test_every_hop_is_checked_even_on_the_same_server(target: ProbeTarget) -> None:
    # /to-localhost redirects to http://localhost:<port>/ok: allowed only if
    # what localhost resolves to is allowed.
    allowed = AddressPolicy.build(allow_cidrs=["127.0.0.1/32"])
    result = await probe_http(
        f"{target.url}/to-localhost", policy=allowed, options=ProbeOptions(cache_bust=False)
    )
    assert [hop.status for hop in result.main.hops] == [302, 200]
    names_only = AddressPolicy.build(allow_hosts=["127.0.0.1"], allow_cidrs=["127.0.0.1/32"])
    result = await probe_http(
        f"{target.url}/to-localhost", policy=names_only, options=ProbeOptions(cache_bust=False)
    )
    assert result.main.failure is not None
    assert "not an allowed host" in result.main.failure.message


async def test_connection_goes_to_the_checked_address(target: ProbeTarget) -> None:
    # "shop.invalid" exists only in the fake resolver: the request can only
    # have reached the server through the checked, pinned address, and the
    # resolver is asked once (no second lookup to rebind).
    resolver = FakeResolver({"shop.invalid": ["127.0.0.1"]})
    policy = AddressPolicy.build(allow_cidrs=["127.0.0.1/32"])
    result = await probe_http(
        f"http://shop.invalid:{target.port}/ok",
        policy=policy,
        resolver=resolver,
        options=ProbeOptions(cache_bust=False),
    )
    assert result.main.status == 200
    assert result.main.final.address == "127.0.0.1"
    assert resolver.calls == ["shop.invalid"]
    assert target.last_call("/ok").header("Host") == f"shop.invalid:{target.port}"


async def test_guarded_transport_serves_only_its_target(target: ProbeTarget) -> None:
    checked = CheckedTarget(host="a.invalid", port=target.port, addresses=("127.0.0.1",), dns_seconds=None)
    transport = GuardedTransport(checked, ssl.create_default_context())
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        assert (await client.get(f"http://a.invalid:{target.port}/ok")).status_code == 200
        with pytest.raises(httpx.ConnectError, match="not the checked target"):
            await client.get(f"http://b.invalid:{target.port}/ok")
        with pytest.raises(httpx.ConnectError, match="not the checked target"):
            await client.get(f"http://a.invalid:{target.port + 1}/ok")
