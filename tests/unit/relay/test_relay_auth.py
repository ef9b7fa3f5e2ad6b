"""Pure parts of the relay: path parsing, Origin matching, credential extraction, header rules."""

from __future__ import annotations

import pytest

from coditect.relay.auth import (
    Refusal,
    check_origin,
    parse_path,
    relay_cookie,
    split_query,
    split_subprotocols,
)
from coditect.relay.headers import Forwarding, client_ip, response_headers, upstream_request_headers
from coditect.workspaces.tickets import RelayDenied

WID = "0b5e4a52-6a2e-4c1f-9d0e-3f1f7a9c2b11"
ALLOWED = frozenset({"https://app.example"})


def test_parse_path() -> None:
    t = parse_path(f"/workspaces/{WID}/a/b%2Fc".encode())
    assert (t.workspace_id, t.upstream_path, t.prefix) == (WID, b"/a/b%2Fc", f"/workspaces/{WID}")
    assert parse_path(f"/workspaces/{WID}".encode()).upstream_path == b"/"
    for bad in (
        f"/workspaces/{WID.upper()}/x",
        "/workspaces/abc/x",
        f"/workspaces/{WID}x/y",
        "/workspacesx/",
    ):
        with pytest.raises(Refusal) as info:
            parse_path(bad.encode())
        assert info.value.status == 404


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "https://app.example.evil.com", "https://evil.com/?https://app.example",
     "https://app.example.", "https://app.examplex", "http://app.example", "https://app.example:443",
     "HTTPS://APP.EXAMPLE", "null", "", " https://app.example"],
)  # fmt: skip
def test_origin_must_match_exactly(origin: str) -> None:
    with pytest.raises(Refusal) as info:
        check_origin([(b"origin", origin.encode())], ALLOWED)
    assert (info.value.status, info.value.code) == (403, "origin_not_allowed")


def test_origin_allowed_or_absent_and_never_twice() -> None:
    check_origin([(b"origin", b"https://app.example")], ALLOWED)
    check_origin([], ALLOWED)
    with pytest.raises(Refusal):
        check_origin([(b"origin", b"https://app.example"), (b"origin", b"https://evil.example")], ALLOWED)


def test_credentials_are_found_and_removed() -> None:
    assert split_subprotocols(["coditect.ticket.abc", "tty"]) == ("abc", ["tty"])
    assert split_subprotocols(["tty"]) == (None, ["tty"])
    assert split_query(b"a=1&ticket=T%2B&b=2") == ("T+", b"a=1&b=2")
    assert split_query(b"ticket=x&ticket=y") == ("x", b"")
    assert split_query(b"tickets=1") == (None, b"tickets=1")
    assert relay_cookie([(b"cookie", b"a=1; coditect_relay=VAL; b=2")]) == "VAL"
    assert relay_cookie([(b"cookie", b"a=1")]) is None


def test_refusal_codes_follow_the_denial_reason() -> None:
    cases = {"missing": (401, "token_missing"), "expired": (401, "token_expired"), "reused": (401, "token_invalid"),
             "session_revoked": (401, "session_revoked"), "other_workspace": (403, "forbidden"),
             "workspace_not_ready": (403, "workspace_not_ready")}  # fmt: skip
    for reason, expected in cases.items():
        refusal = Refusal.of(RelayDenied(reason))  # type: ignore[arg-type]
        assert (refusal.status, refusal.code) == expected
        assert (
            "WWW-Authenticate",
            'Bearer error="invalid_token"',
        ) in refusal.headers or refusal.status == 403


def test_forwarded_headers() -> None:
    incoming = [(b"host", b"evil:1"), (b"authorization", b"Bearer x"), (b"cookie", b"coditect_relay=v; a=1"),
                (b"x-forwarded-for", b"6.6.6.6"), (b"connection", b"x-hop"), (b"x-hop", b"1"), (b"accept", b"*/*"),
                (b"sec-websocket-key", b"k")]  # fmt: skip
    fwd = Forwarding("https", "app.example", 0)
    out = upstream_request_headers(incoming, target_host="10.0.0.5:8000", prefix="/workspaces/w", peer="1.2.3.4",
                                   rid="rid12345", fwd=fwd, websocket=True)  # fmt: skip
    names = [k for k, _ in out]
    assert b"authorization" not in names and b"x-hop" not in names and b"sec-websocket-key" not in names
    assert b"cookie" not in names  # no cookie crosses the relay (issue 15 item 7)
    assert (b"x-forwarded-for", b"1.2.3.4") in out and b"host" not in names
    out = upstream_request_headers(incoming, target_host="10.0.0.5:8000", prefix="/p", peer="1.2.3.4", rid="r" * 8,
                                   fwd=fwd, websocket=False)  # fmt: skip
    assert [v for k, v in out if k == b"host"] == [b"10.0.0.5:8000"]
    assert client_ip([(b"x-forwarded-for", b"6.6.6.6, 5.5.5.5")], "127.0.0.1", 1) == "5.5.5.5"
    # Fewer entries than trusted hops: the header did not come through our proxies, so the
    # address is the peer's, never the client-chosen first entry.
    assert client_ip([(b"x-forwarded-for", b"6.6.6.6")], "127.0.0.1", 2) == "127.0.0.1"
    assert client_ip([(b"x-forwarded-for", b"6.6.6.6")], "127.0.0.1", 0) == "127.0.0.1"
    kept = response_headers([(b"Set-Cookie", b"coditect_relay=stolen; Path=/"), (b"Set-Cookie", b"a=1"),
                             (b"Transfer-Encoding", b"chunked"), (b"Content-Type", b"text/html")])  # fmt: skip
    assert kept == [(b"content-type", b"text/html")]  # no Set-Cookie crosses the relay either
