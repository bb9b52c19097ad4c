"""Conditions evaluated against synthetic requests, as the HTTP layer will use them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emberd.addr import normalize_host, parse_network
from emberd.config.conditions import Field, Op, make_condition
from emberd.config.errors import Location
from emberd.config.loader import load

LOC = Location("t", 1, 1)


class Req:
    """Request facts for conditions, given as keyword arguments."""

    def __init__(self, **facts: str) -> None:
        self.facts = facts

    def cond_value(self, field: Field, header: str | None) -> str | None:
        if field is Field.REQUEST_HEADER:
            return self.facts.get(header or "")
        return self.facts.get(field.name.lower())


def settings(body: str, **facts: str):
    config = load("t.conf", 'server.document-root = "/srv"\n' + body)
    return config.for_request(Req(**facts))[0]


def test_no_conditions_uses_the_global_values():
    config = load("t.conf", 'server.document-root = "/srv"\nserver.name = "g"')
    assert config.for_request(Req())[0]["server.name"] == "g"


def test_later_matching_blocks_win():
    body = ('$HTTP["url"] =^ "/a" { server.name = "a" }\n'
            '$HTTP["url"] =^ "/ab" { server.name = "ab" }\n')
    assert settings(body, url="/abc")["server.name"] == "ab"
    assert settings(body, url="/ax")["server.name"] == "a"
    assert settings(body, url="/x")["server.name"] == ""


def test_else_chain_takes_the_first_true_branch_only():
    body = ('$HTTP["host"] == "a" { server.name = "1" }\n'
            'else $HTTP["url"] =^ "/" { server.name = "2" }\n'
            'else { server.name = "3" }\n')
    assert settings(body, host="a", url="/")["server.name"] == "1"
    assert settings(body, host="b", url="/")["server.name"] == "2"
    assert settings(body, host="b", url="x")["server.name"] == "3"


def test_nested_blocks_need_their_parent():
    body = ('$HTTP["host"] == "a" {\n'
            '  $HTTP["url"] =^ "/api" { server.name = "api" }\n'
            '  else { server.name = "a-other" }\n'
            "}\n")
    assert settings(body, host="a", url="/api/x")["server.name"] == "api"
    assert settings(body, host="a", url="/")["server.name"] == "a-other"
    # the else branch must not apply when the parent does not
    assert settings(body, host="b", url="/")["server.name"] == ""


def test_else_of_a_skipped_chain_is_skipped():
    body = ('$HTTP["host"] == "a" {\n'
            '  $HTTP["url"] == "/" { server.name = "root" } else { server.name = "else" }\n'
            '}\n')
    assert settings(body, host="b", url="/x")["server.name"] == ""


@pytest.mark.parametrize(
    ("op", "pattern", "subject", "hit"),
    [
        (Op.EQ, "/a", "/a", True), (Op.EQ, "/a", "/ab", False),
        (Op.NE, "/a", "/a", False), (Op.NE, "/a", "/b", True),
        (Op.PREFIX, "/a", "/abc", True), (Op.PREFIX, "/a", "/b", False),
        (Op.SUFFIX, ".php", "/x.php", True), (Op.SUFFIX, ".php", "/x.html", False),
        (Op.MATCH, r"\.(png|jpg)$", "/i.png", True), (Op.MATCH, r"^/x", "/ax", False),
        (Op.NOMATCH, r"^/x", "/ax", True), (Op.NOMATCH, r"^/x", "/x", False),
        (Op.EQ, "", "", True), (Op.PREFIX, "", "/", True),
    ],
)
def test_operators(op, pattern, subject, hit):
    cond = make_condition("HTTP", "url", op, pattern, LOC)
    assert cond.matches(subject)[0] is hit


def test_missing_value_compares_as_empty():
    cond = make_condition("HTTP", "referer", Op.EQ, "", LOC)
    assert cond.matches(None)[0] is True


def test_regex_captures():
    cond = make_condition("HTTP", "host", Op.MATCH, r"^(\w+)\.(example)\.org$", LOC)
    assert cond.matches("www.example.org") == (True, ("www.example.org", "www", "example"))


def test_captures_follow_the_block_that_set_the_key():
    config = load("t.conf", 'server.document-root = "/srv"\n'
                  '$HTTP["host"] =~ "^(\\w+)\\.example\\.org$" {\n'
                  '  server.name = "sub"\n'
                  '  $HTTP["url"] =~ "^/(a)(b)" { server.tag = "x" }\n'
                  "}\n")
    _, match = config.for_request(Req(host="www.example.org", url="/abc"))
    assert config.captures_for(match, "server.name") == ("www.example.org", "www")
    assert config.captures_for(match, "server.tag") == ("/ab", "a", "b")
    assert config.captures_for(match, "server.errorlog") == ()


@pytest.mark.parametrize(
    ("value", "authority", "hit"),
    [
        ("example.org", "example.org", True),
        ("example.org", "example.org:8080", True),   # port optional on the request side
        ("example.org:8080", "example.org", True),   # and on the config side
        ("example.org:8080", "example.org:8081", False),
        ("example.org", "example.org:123456789", False),
        ("example.org", "www.example.org", False),
        ("[::1]", "[::1]:80", True),
    ],
)
def test_host_equality(value, authority, hit):
    cond = make_condition("HTTP", "host", Op.EQ, value, LOC)
    assert cond.matches(authority)[0] is hit


@pytest.mark.parametrize(
    ("network", "client", "hit"),
    [
        ("10.0.0.0/8", "10.1.2.3", True), ("10.0.0.0/8", "11.0.0.1", False),
        ("192.168.1.5", "192.168.1.5", True), ("192.168.1.5", "192.168.1.6", False),
        ("10.0.0.0/8", "::ffff:10.9.9.9", True),  # IPv4 client on a dual-stack socket
        ("2001:db8::/32", "2001:db8:1::1", True), ("2001:db8::/32", "2001:db9::1", False),
        ("::1", "::1", True), ("10.0.0.0/8", "::1", False), ("10.0.0.0/8", "", False),
    ],
)
def test_remote_ip_networks(network, client, hit):
    eq = make_condition("HTTP", "remote-ip", Op.EQ, network, LOC)
    ne = make_condition("HTTP", "remote-ip", Op.NE, network, LOC)
    assert eq.matches(client)[0] is hit
    assert ne.matches(client)[0] is (not hit)


def test_request_header_and_method_and_scheme():
    body = ('$REQUEST_HEADER["X-Api-Key"] == "k" { server.name = "key" }\n'
            '$HTTP["request-method"] == "POST" { server.tag = "post" }\n'
            '$HTTP["scheme"] == "https" { server.errorlog = "/tls.log" }\n')
    s = settings(body, **{"x-api-key": "k", "request_method": "POST", "scheme": "https"})
    assert (s["server.name"], s["server.tag"], s["server.errorlog"]) == ("key", "post", "/tls.log")


def test_socket_blocks():
    config = load("t.conf", 'server.document-root = "/srv"\n'
                  '$SERVER["socket"] == ":8443" { server.listen-backlog = 16 }\n'
                  '$SERVER["socket"] == "127.0.0.1:81" { server.use-ipv6 = "disable" }\n')
    assert config.socket_tokens() == [":8443", "127.0.0.1:81"]
    assert config.for_socket(":8443")["server.listen-backlog"] == 16
    assert config.for_socket("127.0.0.1:81")["server.listen-backlog"] == 1024


def test_repeated_requests_reuse_merged_settings():
    config = load("t.conf", 'server.document-root = "/srv"\n'
                  '$HTTP["url"] =^ "/a" { server.name = "a" }\n')
    first, _ = config.for_request(Req(url="/a/1"))
    second, _ = config.for_request(Req(url="/a/2"))
    assert first is second


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Example.ORG", "example.org"), ("example.org:80", "example.org:80"),
        ("127.1", "127.0.0.1"), ("[::0001]:8080", "[::1]:8080"), ("[::1]", "[::1]"),
        ("example.org:", "example.org"),
    ],
)
def test_normalize_host(raw, norm):
    assert normalize_host(raw) == norm


@pytest.mark.parametrize("raw", ["", ":80", "a:b", "a:0", "a:65536", "[::g]", "[]", "[::1]x"])
def test_normalize_host_rejects(raw):
    assert normalize_host(raw) is None


def test_normalize_host_drops_the_scheme_port():
    assert normalize_host("example.org:443", 443) == "example.org"


@given(st.ip_addresses(v=4), st.integers(1, 32))
def test_ipv4_network_contains_its_own_address(addr, prefix):
    net = parse_network(f"{addr}/{prefix}")
    assert net is not None
    assert str(addr) in net


@given(st.ip_addresses(v=6), st.integers(1, 128))
def test_ipv6_network_contains_its_own_address(addr, prefix):
    if addr.ipv4_mapped is not None:
        return
    net = parse_network(f"{addr}/{prefix}")
    assert net is not None
    assert str(addr) in net
