"""Client addresses: parsing what sockets and proxies write, the /24 or /64 a client lives in, and who to believe."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate.net import (
    ADDRESS_CACHE_SIZE,
    ClientAddress,
    NetworkIndex,
    TrustedProxies,
    address_of,
    address_range,
    canonical_ip,
    client_prefix,
    network_range,
    parse_ip,
    parse_network,
    prefix_of,
)

# --- address_of: one parse for all a request needs of an address ------------------------------------------------


def expected_address(text: str) -> ClientAddress | None:
    address = parse_ip(text)
    if address is None:
        return None
    return ClientAddress(str(address), address.version, int(address), client_prefix(address))


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.1",
        " 198.51.100.7",
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.1:8080",
        "01.2.3.4",
        "1.2.3",
        "256.1.1.1",
        "::ffff:192.0.2.1",
        "[::ffff:192.0.2.1]:443",
        "2001:DB8::1",
        "[2001:db8::1]:443",
        "fe80::1%eth0",
        "unknown",
        "",
    ],
)
def test_address_of_reads_as_parse_ip_does(text: str) -> None:
    assert address_of(text) == expected_address(text)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_a_dotted_quad_read_without_an_address_object_is_the_same_address(value: int) -> None:
    text = str(ipaddress.IPv4Address(value))
    assert address_of(text) == expected_address(text)


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.0/24",
        " 10.0.0.1/8 ",
        "0.0.0.0/0",
        "203.0.113.7",
        "203.0.113.7/32",
        "198.51.100.0/08",
        "10.0.0.0/255.0.0.0",
        "2001:db8::/32",
        "2001:db8::1",
        "::ffff:192.0.2.0/120",
    ],
)
def test_network_range_reads_as_ipaddress_does(text: str) -> None:
    assert network_range(text) == address_range(parse_network(text))


@pytest.mark.parametrize(
    "text", ["192.0.2.0/33", "192.0.2.0/", "256.0.0.0/8", "01.2.3.0/24", "10.0.0.0/-1", "x/24", ""]
)
def test_network_range_refuses_what_ipaddress_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not an IP network"):
        network_range(text)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=32))
def test_an_ipv4_cidr_read_without_a_network_object_is_the_same_range(value: int, length: int) -> None:
    text = f"{ipaddress.IPv4Address(value)}/{length}"
    assert network_range(text) == address_range(parse_network(text))


# --- parse_ip ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("  192.0.2.1  ", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::1", "::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("192.0.2.1:443", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("[::ffff:192.0.2.1]:8080", "192.0.2.1"),
    ],
)
def test_parse_ip_reads_addresses(text: str, expected: str) -> None:
    assert str(parse_ip(text)) == expected


def test_parse_ip_folds_ipv4_mapped_ipv6_to_an_ipv4_address() -> None:
    assert parse_ip("::ffff:10.1.2.3") == ipaddress.IPv4Address("10.1.2.3")


@pytest.mark.parametrize(
    "text", ["", "unknown", "not-an-ip", "999.1.1.1", "192.0.2", "example.com:80", "[2001:db8::1", "1.2.3.4/24", "_"]
)
def test_parse_ip_garbage_is_none(text: str) -> None:
    assert parse_ip(text) is None


def test_parse_network_accepts_cidr_and_bare_address() -> None:
    assert parse_network("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_network(" 192.0.2.7 ") == ipaddress.ip_network("192.0.2.7/32")
    assert parse_network("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")


def test_parse_network_error_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP network"):
        parse_network("10.0.0.0/33")


# --- client_prefix -----------------------------------------------------------------------------------------------


def test_client_prefix_of_ipv4_is_its_slash_24() -> None:
    assert client_prefix(ipaddress.IPv4Address("203.0.113.77")) == "203.0.113.0/24"


def test_client_prefix_of_ipv6_is_its_slash_64() -> None:
    assert client_prefix(ipaddress.IPv6Address("2001:db8:1:2:aaaa:bbbb:cccc:dddd")) == "2001:db8:1:2::/64"


def test_clients_in_the_same_slash_64_share_a_prefix() -> None:
    first = client_prefix(ipaddress.IPv6Address("2001:db8:1:2::1"))
    second = client_prefix(ipaddress.IPv6Address("2001:db8:1:2:ffff::9"))
    other = client_prefix(ipaddress.IPv6Address("2001:db8:1:3::1"))
    assert first == second != other


# --- TrustedProxies.resolve --------------------------------------------------------------------------------------


def proxies(*networks: str) -> TrustedProxies:
    return TrustedProxies(parse_network(network) for network in networks)


def test_untrusted_peer_ignores_forwarded_headers() -> None:
    who = proxies("10.0.0.0/8").resolve("203.0.113.9", "198.51.100.1", "198.51.100.2")
    assert who.client == "203.0.113.9"
    assert who.peer == "203.0.113.9"
    assert who.peer_trusted is False


def test_untrusted_peer_ignores_x_real_ip() -> None:
    who = proxies("10.0.0.0/8").resolve("203.0.113.9", None, "198.51.100.2")
    assert who.client == "203.0.113.9"


def test_trusted_peer_gives_the_forwarded_client() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "198.51.100.1", None)
    assert who.client == "198.51.100.1"
    assert who.peer == "10.0.0.1"
    assert who.peer_trusted is True


def test_trusted_peer_skips_trusted_hops_from_the_right() -> None:
    who = proxies("10.0.0.0/8", "192.168.0.0/16").resolve("10.0.0.1", "198.51.100.1, 192.168.1.1, 10.2.3.4", None)
    assert who.client == "198.51.100.1"


def test_forged_left_most_entries_are_ignored() -> None:
    # The client wrote "1.1.1.1, 10.9.9.9" itself; our proxy appended the address it really saw.
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "1.1.1.1, 10.9.9.9, 198.51.100.1", None)
    assert who.client == "198.51.100.1"


def test_repeated_header_values_joined_by_comma_are_walked_like_one_header() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "1.1.1.1,198.51.100.1,10.0.0.2", None)
    assert who.client == "198.51.100.1"


def test_garbage_entry_stops_the_walk_at_the_last_vouched_address() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "198.51.100.1, garbage, 10.0.0.7", None)
    assert who.client == "10.0.0.7"


def test_garbage_as_rightmost_entry_leaves_the_peer_as_client() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "198.51.100.1, unknown", None)
    assert who.client == "10.0.0.1"


def test_forwarded_entry_with_port_is_read() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "198.51.100.1:50000", None)
    assert who.client == "198.51.100.1"


def test_all_hops_trusted_gives_the_left_most_hop() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "10.0.0.3, 10.0.0.2", None)
    assert who.client == "10.0.0.3"


def test_x_real_ip_is_used_when_there_is_no_x_forwarded_for() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", None, "198.51.100.2")
    assert who.client == "198.51.100.2"
    assert who.peer_trusted is True


def test_x_forwarded_for_wins_over_x_real_ip() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "198.51.100.1", "198.51.100.2")
    assert who.client == "198.51.100.1"


def test_garbage_x_real_ip_leaves_the_peer_as_client() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", None, "garbage")
    assert who.client == "10.0.0.1"


def test_trusted_peer_without_forwarded_headers_is_the_client() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", None, None)
    assert who.client == "10.0.0.1"
    assert who.peer_trusted is True


def test_ipv6_trusted_network_and_ipv6_client() -> None:
    trusted = proxies("2001:db8:aaaa::/48")
    who = trusted.resolve("2001:db8:aaaa::1", "2001:db8:ffff::42, 2001:db8:aaaa::2", None)
    assert who.client == "2001:db8:ffff::42"
    assert who.peer_trusted is True


def test_ipv6_peer_outside_the_trusted_network_is_not_trusted() -> None:
    who = proxies("2001:db8:aaaa::/48").resolve("2001:db8:bbbb::1", "198.51.100.1", None)
    assert who.client == "2001:db8:bbbb::1"
    assert who.peer_trusted is False


def test_ipv4_mapped_peer_matches_an_ipv4_trusted_network() -> None:
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    who = proxies("10.0.0.0/8").resolve("::ffff:10.0.0.1", "198.51.100.1", None)
    assert who.client == "198.51.100.1"
    assert who.peer_trusted is True


def test_bracketed_ipv6_forwarded_entry_is_read() -> None:
    who = proxies("10.0.0.0/8").resolve("10.0.0.1", "[2001:db8::9]:443", None)
    assert who.client == "2001:db8::9"


def test_ipv6_network_does_not_trust_ipv4_peers() -> None:
    who = proxies("::/0").resolve("10.0.0.1", "198.51.100.1", None)
    assert who.client == "10.0.0.1"
    assert who.peer_trusted is False


def test_no_trusted_proxies_configured_believes_no_header() -> None:
    who = TrustedProxies(()).resolve("127.0.0.1", "198.51.100.1", "198.51.100.2")
    assert who.client == "127.0.0.1"
    assert who.peer_trusted is False


def test_a_flood_of_new_addresses_leaves_the_address_cache_at_its_bound() -> None:
    index = NetworkIndex({"example": [address_range(parse_network("198.18.0.0/15"))]})
    for number in range(ADDRESS_CACHE_SIZE + 100):
        address = str(ipaddress.IPv4Address(0xC6120000 + number))  # 198.18.0.0 onwards
        assert index.lookup(address) == {"example"}
        assert canonical_ip(address) == address
        assert prefix_of(address) == f"{address.rpartition('.')[0]}.0/24"
    assert address_of.cache_info().currsize == ADDRESS_CACHE_SIZE
