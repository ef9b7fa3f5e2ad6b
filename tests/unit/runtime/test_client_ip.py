"""The client address rule with `client_ip_header` (set by the front door / Envoy ingress)."""

from __future__ import annotations

import pytest

from coditect.config import Settings
from coditect.http.client_ip import client_ip
from coditect.relay.headers import client_ip as relay_client_ip

HEADER = "X-Envoy-External-Address"


def test_the_named_header_is_the_only_source_when_configured() -> None:
    assert client_ip("10.0.0.9", ["6.6.6.6"], 1, ["203.0.113.7"]) == "203.0.113.7"
    assert client_ip("10.0.0.9", [], 0, [" 2001:db8::1 "]) == "2001:db8::1"
    assert client_ip("10.0.0.9", [], 0, ["2001:DB8:0::1"]) == "2001:db8::1"  # one spelling per address


@pytest.mark.parametrize(
    "values", [[], ["not-an-ip"], ["203.0.113.7, 198.51.100.9"], ["203.0.113.7", "198.51.100.9"], [""]]
)
def test_absent_invalid_or_repeated_falls_back_to_the_peer_never_forwarded_for(values: list[str]) -> None:
    assert client_ip("10.0.0.9", ["6.6.6.6"], 1, values) == "10.0.0.9"


def test_without_the_setting_the_old_rule_holds() -> None:
    assert client_ip("10.0.0.9", ["6.6.6.6, 5.5.5.5"], 1) == "5.5.5.5"
    assert client_ip("10.0.0.9", ["6.6.6.6"], 0) == "10.0.0.9"


def test_the_relay_reads_the_same_header() -> None:
    headers = [(b"x-envoy-external-address", b"203.0.113.7"), (b"x-forwarded-for", b"6.6.6.6")]
    assert relay_client_ip(headers, "10.0.0.9", 1, HEADER) == "203.0.113.7"
    assert relay_client_ip(headers, "10.0.0.9", 1) == "6.6.6.6"
    assert relay_client_ip([(b"x-forwarded-for", b"6.6.6.6")], "10.0.0.9", 1, HEADER) == "10.0.0.9"


def test_the_setting_is_a_header_name() -> None:
    assert Settings(client_ip_header=HEADER).client_ip_header == HEADER
    with pytest.raises(ValueError):
        Settings(client_ip_header="X-Bad: injected")
