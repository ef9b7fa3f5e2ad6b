"""Ingress routes, path → function: one Istio VirtualService (net-istio), rendered from the registry.

Why Istio VirtualService rather than a Gateway API HTTPRoute: the route table needs regular
expressions (ids and file paths sit in the middle of paths: /api/v5/sessions/{id}/files/{path} is
the files function, /api/v5/sessions/{id} the sessions function), and a VirtualService evaluates
its `http` rules in order with RE2 full-match regexes, so precedence is defined. In the Gateway
API, RegularExpression path matching is "implementation-specific" support and precedence between
two regex matches is unspecified. It is also the pattern Knative documents for routing paths of
one host to several Knative Services ("Routing across Knative Services" with net-istio).

Knative routes by Host header, not by path: every rule rewrites `authority` to the Service's
cluster-local host `<function>.coditect.svc.cluster.local` and sends it to Knative's local
gateway, which picks the revision. The Services themselves are cluster-local (see knative.py).

Matching: each werkzeug rule becomes an anchored regex (`<uuid:id>` → the UUID pattern,
`<path:p>` → `[^/].*`, others → `[^/]+`; an optional trailing slash, as the functions' own maps
use strict_slashes=False). A path served by one function is matched on the path alone, so a
wrong method still reaches it and answers 405 with `Allow`. Where several functions share a path,
each gets method matches, listed first, and the path alone then falls back to the first of them
(its 405 lists only its own methods). Anything else under /api/v5/ goes to the health function,
whose router answers the contract's 404 envelope.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from coditect.deploy.knative import NAMESPACE
from coditect.registry.spec import FunctionSpec

GATEWAY = "knative-serving/knative-ingress-gateway"
LOCAL_GATEWAY = "knative-local-gateway.istio-system.svc.cluster.local"
# The public host; overlays patch /spec/hosts with the real name.
HOST = "api.coditect.example"
FALLBACK_FUNCTION = "health"
UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PARAM = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_CONVERTERS = {"uuid": UUID, "path": "[^/].*", "int": "[0-9]+", "float": "[0-9]+\\.[0-9]+"}


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


def _rule(name: str, function: str, matches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "match": matches,
        "rewrite": {"authority": host(function)},
        "route": [{"destination": {"host": LOCAL_GATEWAY, "port": {"number": 80}}}],
    }


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
    ingress (`virtual_service`) and the local front door (`coditect.devstack.frontdoor`) are
    both rendered from it."""
    owners: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    rules: dict[str, str] = {}
    for spec in functions:
        for route in spec.routes:
            regex = path_regex(route.path)
            owners[regex][spec.name].add(route.method)
            rules.setdefault(regex, route.path)
    table = [
        PathRoute(rules[regex], regex, {name: frozenset(methods) for name, methods in by_name.items()})
        for regex, by_name in owners.items()
    ]
    return sorted(table, key=lambda entry: _specificity(entry.rule))


def virtual_service(functions: list[FunctionSpec]) -> dict[str, Any]:
    method_rules: dict[str, list[dict[str, Any]]] = defaultdict(list)
    path_rules: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in sorted(route_table(functions), key=lambda e: e.regex):
        regex, owners = entry.regex, entry.owners
        names = sorted(owners)
        if len(names) > 1:
            for name in names:
                for method in sorted(owners[name]):
                    method_rules[name].append({"uri": {"regex": regex}, "method": {"exact": method}})
        path_rules[names[0]].append({"uri": {"regex": regex}})
    http = [_rule(f"{name}-by-method", name, method_rules[name]) for name in sorted(method_rules)]
    http += [_rule(name, name, path_rules[name]) for name in sorted(path_rules)]
    if any(spec.name == FALLBACK_FUNCTION for spec in functions):
        http.append(_rule("unknown-api-path", FALLBACK_FUNCTION, [{"uri": {"prefix": "/api/v5/"}}]))
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {
            "name": "coditect-api",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "coditect"},
        },
        "spec": {"hosts": [HOST], "gateways": [GATEWAY], "http": http},
    }


def kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["virtual-service.yaml"],
    }
