"""HTTP through a real relay: ticket → cookie → proxied requests, credentials stripped, refusals."""

from __future__ import annotations

import time

import httpx

from coditect.workspaces.tickets import COOKIE_NAME
from tests.functional.relay.conftest import ORIGIN, Stack
from tests.helpers import check_envelope


def client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.relay_url, trust_env=False, follow_redirects=False, timeout=10)


def cookie_from(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}=")
    return header.split(";", 1)[0].split("=", 1)[1]


def test_first_visit_with_ticket_sets_scoped_cookie_and_redirects_without_it(stack: Stack) -> None:
    login = stack.login()
    ws = stack.workspace(login)
    ticket = stack.ticket(login, ws)
    with client(stack) as c:
        r = c.get(f"/workspaces/{ws.id}/echo-http/a?x=1&ticket={ticket}&y=2")
        assert r.status_code == 303
        assert r.headers["location"] == f"/workspaces/{ws.id}/echo-http/a?x=1&y=2"
        attrs = [a.strip() for a in r.headers["set-cookie"].split(";")]
        assert f"Path=/workspaces/{ws.id}/" in attrs
        assert {"HttpOnly", "SameSite=Strict", "Secure"} <= set(attrs)
        assert ticket not in r.headers["location"]
        cookie = cookie_from(r)
        # The cookie alone now works, and again (it is not single use).
        for _ in range(2):
            r2 = c.get(r.headers["location"], headers={"Cookie": f"theme=dark; {COOKIE_NAME}={cookie}"})
            assert r2.status_code == 200
            seen = r2.json()
            assert seen["path"] == "/echo-http/a" and seen["query"] == "x=1&y=2"
            cookies = [v for k, v in seen["headers"] if k == "cookie"]
            assert cookies == []  # no cookie crosses the relay: not the relay's, not the others
        # The ticket was spent by the first visit.
        check_envelope(c.get(f"/workspaces/{ws.id}/echo-http/a?ticket={ticket}"), 401, "token_invalid")


def test_credentials_and_forged_forwarding_headers_are_not_forwarded(stack: Stack) -> None:
    login = stack.login()
    ws = stack.workspace(login)
    ticket = stack.ticket(login, ws)
    forged = {
        "Authorization": "Bearer secret-access-token",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "Host": "evil.example:9999",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "gopher",
        "X-Forwarded-Port": "1",
        "Forwarded": "for=6.6.6.6;host=evil.example",
        "X-Real-IP": "6.6.6.6",
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "hop",
        "Origin": ORIGIN,
    }
    with client(stack) as c:
        # A non-GET first visit is forwarded at once (no redirect), with the cookie set on the answer.
        r = c.post(f"/workspaces/{ws.id}/echo-http/p?ticket={ticket}", headers=forged, content=b"body-bytes")
    assert r.status_code == 200, r.text
    assert r.headers["set-cookie"].startswith(f"{COOKIE_NAME}=")
    seen = r.json()
    assert seen["method"] == "POST" and seen["body"] == "body-bytes" and seen["query"] == ""
    headers = {}
    for k, v in seen["headers"]:
        headers.setdefault(k, []).append(v)
    text = str(seen)
    assert ticket not in text and "secret-access-token" not in text and "c2VjcmV0" not in text
    assert "authorization" not in headers and "proxy-authorization" not in headers
    assert "x-secret-hop" not in headers and "forwarded" not in headers and "x-real-ip" not in headers
    assert headers["host"] == [f"127.0.0.1:{stack.workspace_port}"]
    assert headers["x-forwarded-host"] == ["app.example"]
    assert headers["x-forwarded-proto"] == ["https"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-prefix"] == [f"/workspaces/{ws.id}"]
    assert "x-forwarded-port" not in headers


def test_refusals(stack: Stack) -> None:
    login = stack.login()
    ws = stack.workspace(login)
    other = stack.workspace(login)
    with client(stack) as c:
        check_envelope(c.get(f"/workspaces/{ws.id}/echo-http/"), 401, "token_missing")
        check_envelope(c.get(f"/workspaces/{ws.id}/echo-http/?ticket=not-a-ticket"), 401, "token_invalid")
        check_envelope(
            c.get(f"/workspaces/{ws.id}/", headers={"Cookie": f"{COOKIE_NAME}=forged"}), 401, "token_invalid"
        )
        expired = stack.ticket(login, ws, now=time.time() - 300)
        check_envelope(c.get(f"/workspaces/{ws.id}/?ticket={expired}"), 401, "token_expired")
        # Ticket of another workspace of the same user: 403.
        t_other = stack.ticket(login, other)
        check_envelope(c.get(f"/workspaces/{ws.id}/?ticket={t_other}"), 403, "forbidden")
        # Cookie of another workspace presented here: 403.
        r = c.get(f"/workspaces/{other.id}/?ticket={stack.ticket(login, other)}")
        check_envelope(
            c.get(f"/workspaces/{ws.id}/", headers={"Cookie": f"{COOKIE_NAME}={cookie_from(r)}"}),
            403,
            "forbidden",
        )
        # Bad Origin: 403, and the ticket is spent (a page that saw it cannot retry it elsewhere).
        for origin in ("https://evil.example", "https://app.example.evil.com", "https://app.examplex",
                       "http://app.example", "https://app.example:443", "null", "https://APP.example"):  # fmt: skip
            good = stack.ticket(login, ws)
            r = c.get(f"/workspaces/{ws.id}/?ticket={good}", headers={"Origin": origin})
            check_envelope(r, 403, "origin_not_allowed")
            r = c.get(f"/workspaces/{ws.id}/?ticket={good}", headers={"Origin": ORIGIN})
            check_envelope(r, 401, "token_invalid")
        good = stack.ticket(login, ws)
        assert c.get(f"/workspaces/{ws.id}/?ticket={good}", headers={"Origin": ORIGIN}).status_code == 303
        # Not a canonical workspace id: 404.
        check_envelope(c.get(f"/workspaces/{ws.id.upper()}/"), 404, "not_found")
        check_envelope(c.get("/workspaces/not-a-uuid/x"), 404, "not_found")


def test_cookie_stops_working_after_logout_and_after_stop(stack: Stack) -> None:
    login = stack.login()
    ws = stack.workspace(login)
    with client(stack) as c:
        cookie = cookie_from(c.get(f"/workspaces/{ws.id}/?ticket={stack.ticket(login, ws)}"))
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}"}
        assert c.get(f"/workspaces/{ws.id}/healthz", headers=headers).status_code == 200
        stack.logout(login)
        check_envelope(c.get(f"/workspaces/{ws.id}/healthz", headers=headers), 401, "session_revoked")
    login2 = stack.login()
    ws2 = stack.workspace(login2)
    with client(stack) as c:
        cookie = cookie_from(c.get(f"/workspaces/{ws2.id}/?ticket={stack.ticket(login2, ws2)}"))
        stack.stop(ws2)
        r = c.get(f"/workspaces/{ws2.id}/healthz", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
        check_envelope(r, 403, "workspace_not_ready")


def test_ticket_never_logged(stack: Stack) -> None:
    login = stack.login()
    ws = stack.workspace(login)
    ticket = stack.ticket(login, ws)
    with client(stack) as c:
        assert c.get(f"/workspaces/{ws.id}/healthz?ticket={ticket}").status_code == 303
    time.sleep(0.2)
    text = stack.relay_log.read_text()
    assert f"/workspaces/{ws.id}/healthz" in text  # the request was logged...
    assert ticket not in text  # ...without its ticket


def test_workspace_cookies_never_reach_the_client_and_framing_is_console_only(stack: Stack) -> None:
    """Issue 15 items 5 and 7: a workspace's Set-Cookie is dropped (it would be a cookie of the
    API's origin); workspace answers may be framed only by the console's origins; the relay's own
    answers (refusals, the ticket redirect) by nobody."""
    login = stack.login()
    ws = stack.workspace(login)
    with client(stack) as c:
        first = c.get(f"/workspaces/{ws.id}/echo-http/x?ticket={stack.ticket(login, ws)}")
        assert first.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in first.headers["content-security-policy"]
        cookie = cookie_from(first)
        r = c.get(
            f"/workspaces/{ws.id}/echo-http/x?set_cookie=session%3Dplanted%3B%20Path%3D%2F",
            headers={"Cookie": f"{COOKIE_NAME}={cookie}"},
        )
        assert r.status_code == 200, r.text
        assert "set-cookie" not in r.headers and "planted" not in str(r.headers)
        assert r.headers["content-security-policy"] == f"frame-ancestors {ORIGIN}"
        refused = c.get(f"/workspaces/{ws.id}/")
        check_envelope(refused, 401, "token_missing")
        assert refused.headers["x-frame-options"] == "DENY"
        assert refused.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert refused.headers["x-content-type-options"] == "nosniff"
