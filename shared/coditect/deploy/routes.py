"""Ingress routes, path → function, rendered from the registry for two ingresses (a render option
per overlay): an Istio VirtualService (`infra/routes/istio/`) and Gateway API HTTPRoutes
(`infra/routes/gateway-api/`, implemented by Istio, Contour, Envoy Gateway, and Kourier through
net-gateway-api's gateways).

Matching: each werkzeug rule becomes an anchored regex (`<uuid:id>` → the UUID pattern,
`<path:p>` → `[^/].*`, others → `[^/]+`; an optional trailing slash, as the functions' own maps
use strict_slashes=False). A path served by one function is matched on the path alone, so a
wrong method still reaches it and answers 405 with `Allow`. Where several functions share a path,
each gets method matches, listed first, and the path alone then falls back to the first of them
(its 405 lists only its own methods). Anything else under /api/v5/ goes to the health function,
whose router answers the contract's 404 envelope. `/workspaces` and everything under it (HTTP and
WebSocket) goes to the ASGI function (the relay), a Deployment behind a plain Service (see
coditect.deploy.relay), not through Knative. Nothing else is routed: the functions' own
`/healthz` and `/metrics` are unreachable from outside.

Knative routes by Host header, not by path: every function rule rewrites the authority to the
Service's cluster-local host `<function>.coditect.svc.cluster.local` and sends it to Knative's
local gateway, which picks the revision. The Services themselves are cluster-local.

Precedence. A VirtualService evaluates its `http` rules in order with RE2 full-match regexes, so
precedence is defined. In the Gateway API, RegularExpression matching is "implementation-specific"
and so is precedence between two regex matches; the rendered regexes are therefore pairwise
disjoint except where one path is shared by several functions (those rules carry a method match,
which the Gateway API ranks above a path-only match), and the `/api/v5/` fallback is a PathPrefix
(ranked below regex matches by Istio and Envoy Gateway; check yours). A test checks disjointness.
An HTTPRoute holds at most 16 rules, so each function gets its own HTTPRoute.

The public host is the placeholder `HOST`; each overlay sets CODITECT_PUBLIC_BASE_URL and copies
its host into the routes (kustomize `replacements`), so the host is one setting per overlay.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from coditect.config import Settings
from coditect.deploy import relay
from coditect.deploy.knative import NAMESPACE, REQUEST_TIMEOUT
from coditect.idempotency import HEADER as IDEMPOTENCY_HEADER
from coditect.registry.spec import FunctionSpec

GATEWAY = "knative-serving/knative-ingress-gateway"
LOCAL_GATEWAY = "knative-local-gateway.istio-system.svc.cluster.local"
# Gateway API: the Gateway the routes attach to, and Knative's local gateway Service that the
# function routes forward to (namespace/name depend on the implementation; istio-system for
# net-istio, kourier-system/kourier-internal for Kourier). A ReferenceGrant there must allow
# HTTPRoutes of namespace coditect to reference it (rendered beside the routes).
PARENT_GATEWAY = {"namespace": "coditect", "name": "coditect-public"}
LOCAL_GATEWAY_SERVICE = {"namespace": "istio-system", "name": "knative-local-gateway", "port": 80}
HOST = "api.coditect.example"  # placeholder; overlays replace it (see module docstring)
FALLBACK_FUNCTION = "health"
API_PREFIX = "/api/v5/"
RELAY_PREFIX = "/workspaces"  # the relay's (coditect.relay.app.PREFIX): every method, HTTP and WebSocket
RELAY_TIMEOUT = "0s"  # the relay's own limits apply (12 h workspace lifetime); 0s: no route timeout
UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PARAM = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_CONVERTERS = {"uuid": UUID, "path": "[^/].*", "int": "[0-9]+", "float": "[0-9]+\\.[0-9]+"}
LABELS = {"app.kubernetes.io/part-of": "coditect"}
# Replays. A failed connect is retried for every method (nothing was sent). A connection closed
# before the answer is replayed only where a repeat cannot do twice what the first did: RFC 9110's
# idempotent methods (§9.2.2) — on the relay only the safe ones, its workspaces being arbitrary
# programs — and a POST carrying `Idempotency-Key` on a route that honours it
# (`replayable_posts`). The local front door and the production ingress render the same rule.
IDEMPOTENT_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PUT")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Request bodies up to this size are read whole by the proxy (the local front door, the
# production gateway) before the function is contacted: the functions' JSON limit
# (coditect.config max_json_body) plus one byte, so the function, not the proxy, answers a body at
# the limit.
BUFFER_BYTES = int(Settings.model_fields["max_json_body"].default) + 1
BODY_TIMEOUT = 10  # seconds: for the request headers; a body's base allowance at the front door


def path_regex(rule: str) -> str:
    """The RE2 full-match regex of a werkzeug rule."""
    out, pos = [], 0
    for m in _PARAM.finditer(rule):
        out.append(re.escape(rule[pos : m.start()]))
        out.append(_CONVERTERS.get(m.group("conv") or "", "[^/]+"))
        pos = m.end()
    out.append(re.escape(rule[pos:].rstrip("/")))
    return "".join(out) + "/?"


def host(function: str) -> str:
    return f"{function}.{NAMESPACE}.svc.cluster.local"


@dataclass(frozen=True)
class PathRoute:
    """One path of the route table: its full-match regex and which function serves which method."""

    rule: str  # the first werkzeug rule declaring this path (for people; `regex` is what matches)
    regex: str
    owners: dict[str, frozenset[str]]  # function name → its methods on this path

    @property
    def methods(self) -> frozenset[str]:
        """Every method served on this path (werkzeug adds HEAD wherever GET is served)."""
        served = frozenset(m for methods in self.owners.values() for m in methods)
        return served | {"HEAD"} if "GET" in served else served

    def owner(self, method: str) -> str | None:
        """The function serving `method` here (HEAD: the GET function), or None (405)."""
        for wanted in (method, "GET") if method == "HEAD" else (method,):
            for name, methods in sorted(self.owners.items()):
                if wanted in methods:
                    return name
        return None


def _specificity(rule: str) -> tuple[bool, int, str]:
    """Sort key: static paths first, then fewer parameters, `<path:...>` (which spans "/") last,
    so an ordered first-match (the front door) picks what werkzeug would (/users/me before
    /users/<id>)."""
    return ("<path:" in rule, rule.count("<"), rule)


def route_table(functions: list[FunctionSpec]) -> list[PathRoute]:
    """THE route table, one entry per distinct path regex, most specific first: the production
    ingresses (`virtual_service`, `http_routes`) and the local front door
    (`coditect.devstack.frontdoor`) are all rendered from it."""
    owners: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    rules: dict[str, str] = {}
    for spec in functions:
        for route in spec.routes:
            regex = path_regex(route.path)
            owners[regex][spec.name].add(route.method)
            rules.setdefault(regex, route.path)
    entries = [
        PathRoute(rules[regex], regex, {name: frozenset(methods) for name, methods in by_name.items()})
        for regex, by_name in owners.items()
    ]
    return sorted(entries, key=lambda entry: _specificity(entry.rule))


def table(functions: list[FunctionSpec]) -> list[tuple[str, str, str | None]]:
    """The route table as ingress rules, (function, path regex, method or None) in match order:
    method rules where several functions share a path, then one path rule per path."""
    method_rules: list[tuple[str, str, str | None]] = []
    path_rules: list[tuple[str, str, str | None]] = []
    for entry in route_table(functions):
        names = sorted(entry.owners)
        if len(names) > 1:
            method_rules += [(name, entry.regex, m) for name in names for m in sorted(entry.owners[name])]
        path_rules.append((names[0], entry.regex, None))
    return sorted(method_rules) + sorted(path_rules, key=lambda r: (r[0], r[1]))


def replayable_posts(spec: FunctionSpec) -> list[str]:
    """Path regexes of `spec`'s POST routes that honour `Idempotency-Key` (a repeat answers what
    the first made: coditect.idempotency, the workspace allocation)."""
    return sorted(
        path_regex(route.path)
        for route in spec.routes
        if route.method == "POST" and (route.idempotent or IDEMPOTENCY_HEADER in route.request_headers)
    )


def relays(functions: list[FunctionSpec]) -> list[FunctionSpec]:
    return [spec for spec in functions if spec.kind == "asgi"]


def has_fallback(functions: list[FunctionSpec]) -> bool:
    return any(spec.name == FALLBACK_FUNCTION for spec in functions)


# -- Istio -------------------------------------------------------------------------------------
# Envoy's retry triggers: `connect-failure` and `refused-stream` mean nothing reached the function;
# `reset` is a connection closed before any response byte (it may have). One retry, as the local
# front door does; a rule without `reset` still retries a failed connect.
_RETRY_CONNECT = {"attempts": 1, "retryOn": "connect-failure,refused-stream"}
_RETRY_REPLAY = {"attempts": 1, "retryOn": "connect-failure,refused-stream,reset"}


def _istio_rule(name: str, function: str, matches: list[dict[str, Any]], replay: bool) -> dict[str, Any]:
    return {
        "name": name,
        "match": matches,
        "rewrite": {"authority": host(function)},
        "route": [{"destination": {"host": LOCAL_GATEWAY, "port": {"number": 80}}}],
        "timeout": f"{REQUEST_TIMEOUT}s",
        "retries": _RETRY_REPLAY if replay else _RETRY_CONNECT,
    }


def _one_of(methods: tuple[str, ...]) -> dict[str, str]:
    return {"regex": "|".join(methods)}


def _keyed_post(regex: str) -> dict[str, Any]:
    return {"uri": {"regex": regex}, "method": {"exact": "POST"},
            "headers": {IDEMPOTENCY_HEADER.lower(): {"regex": ".+"}}}  # fmt: skip


def istio_rules(functions: list[FunctionSpec]) -> list[tuple[str, dict[str, Any]]]:
    """The VirtualService's `http` rules in match order, each with the function it goes to: per
    function, the replayable requests (idempotent methods, keyed POSTs where honoured; `reset`
    retried) before the rest (a failed connect retried only); method rules of shared paths before
    path rules; then the relay; then the fallback."""
    keyed = {spec.name: set(replayable_posts(spec)) for spec in functions}
    grouped: dict[tuple[bool, str, bool], list[dict[str, Any]]] = defaultdict(list)
    for name, regex, method in table(functions):
        by_method = method is not None
        if method is None:
            grouped[(False, name, True)].append(
                {"uri": {"regex": regex}, "method": _one_of(IDEMPOTENT_METHODS)}
            )
            grouped[(False, name, False)].append({"uri": {"regex": regex}})
        else:
            replay = method in IDEMPOTENT_METHODS
            grouped[(True, name, replay)].append({"uri": {"regex": regex}, "method": {"exact": method}})
        if regex in keyed[name] and method in (None, "POST"):
            grouped[(by_method, name, True)].append(_keyed_post(regex))
    http = [
        (name, _istio_rule(f"{name}{'-by-method' if by_method else ''}{'-replayable' if replay else ''}", name, matches, replay))
        for (by_method, name, replay), matches in sorted(grouped.items(), key=lambda kv: (not kv[0][0], kv[0][1], not kv[0][2]))
    ]  # fmt: skip
    for spec in relays(functions):
        prefixes = [{"uri": {"exact": RELAY_PREFIX}}, {"uri": {"prefix": RELAY_PREFIX + "/"}}]
        for replay in (True, False):
            rule = {
                "name": f"{spec.name}-replayable" if replay else spec.name,
                "match": [{**m, "method": _one_of(SAFE_METHODS)} for m in prefixes] if replay else prefixes,
                "route": [
                    {"destination": {"host": relay.host(spec), "port": {"number": relay.SERVICE_PORT}}}
                ],
                "timeout": RELAY_TIMEOUT,
                "retries": _RETRY_REPLAY if replay else _RETRY_CONNECT,
            }
            http.append((spec.name, rule))
    if has_fallback(functions):
        fallback = [{"uri": {"prefix": API_PREFIX}}]
        http.append(
            (FALLBACK_FUNCTION, _istio_rule("unknown-api-path", FALLBACK_FUNCTION, fallback, replay=False))
        )
    return http


def virtual_service(functions: list[FunctionSpec]) -> dict[str, Any]:
    """The public host's routes (`istio_rules`); the gateway's own settings are
    `coditect.deploy.envoy`'s EnvoyFilter."""
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "coditect-api", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "hosts": [HOST],
            "gateways": [GATEWAY],
            "http": [rule for _, rule in istio_rules(functions)],
        },
    }


# -- Gateway API -------------------------------------------------------------------------------
def _http_route(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", **PARENT_GATEWAY}],
            "hostnames": [HOST],
            "rules": rules,
        },
    }


def _to_knative(function: str, matches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "matches": matches,
        "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": host(function)}}],
        "backendRefs": [{"group": "", "kind": "Service", **LOCAL_GATEWAY_SERVICE}],
        "timeouts": {"request": f"{REQUEST_TIMEOUT}s"},
    }


def http_routes(functions: list[FunctionSpec]) -> list[dict[str, Any]]:
    per_function: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, regex, method in table(functions):
        match: dict[str, Any] = {"path": {"type": "RegularExpression", "value": regex}}
        if method:
            match["method"] = method
        per_function[name].append(match)
    if has_fallback(functions):
        per_function[FALLBACK_FUNCTION].append({"path": {"type": "PathPrefix", "value": API_PREFIX}})
    out = []
    for name in sorted(per_function):
        matches = per_function[name]
        # at most 64 matches per rule (the CRD's limit); one rule per chunk
        rules = [_to_knative(name, matches[i : i + 64]) for i in range(0, len(matches), 64)]
        out.append(_http_route(f"coditect-{name}", rules))
    for spec in relays(functions):
        rule = {
            "matches": [{"path": {"type": "PathPrefix", "value": RELAY_PREFIX}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": spec.name, "port": relay.SERVICE_PORT}],
            "timeouts": {"request": RELAY_TIMEOUT},
        }
        out.append(_http_route(f"coditect-{spec.name}", [rule]))
    return out


def reference_grant() -> dict[str, Any]:
    """Lets the HTTPRoutes of `coditect` forward to Knative's local gateway Service."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {
            "name": "coditect-routes-to-knative",
            "namespace": LOCAL_GATEWAY_SERVICE["namespace"],
            "labels": LABELS,
        },
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": NAMESPACE}],
            "to": [{"group": "", "kind": "Service", "name": LOCAL_GATEWAY_SERVICE["name"]}],
        },
    }


def kustomization(resources: list[str]) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}
