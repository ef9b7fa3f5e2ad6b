"""The production ingress's Envoy settings: what the local front door (Caddy) does at the edge, for
the Istio ingress gateway, as one EnvoyFilter (`infra/routes/istio/envoy-filter.yaml`).

The VirtualService (coditect.deploy.routes) says where a path goes; this says how the gateway
treats a request before it gets there (issue 14, docs/frontdoor.md "What the production ingress
does the same"):

- Paths are routed as sent: no `..` resolution, no slash merging, escaped slashes kept
  (`normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action` on the gateway's
  HTTP connection manager, whatever the mesh's `pathNormalization` says), so a dot segment in a
  file path reaches the files function and is 400 `invalid_path`.
- Slow clients: the buffer filter receives a request body whole before the function is contacted,
  so a slow sender holds an Envoy stream, never a function thread. It is on for the
  VirtualService's rules only; its limit per rule is the largest JSON body of the rule's function
  plus one byte (the function still answers its own 413 at the limit; above it Envoy answers
  413); the files function (it streams uploads itself) and the relay (WebSocket, IDE traffic)
  are not buffered. Request headers must arrive within `BODY_TIMEOUT` and the whole request
  within `REQUEST_TIMEOUT` (Knative's revision timeout, which already bounds an upload), else
  408. Envoy has no per-size body deadline like the front door's (`BODY_TIMEOUT` + 1 s per
  32 KiB) and no per-route request timeout, so the deadline is the one bound every route can
  take; `request_timeout` stops at the first byte of the answer, so long polls and WebSocket
  upgrades are not cut by it.
- Envoy's own answers (no route: 404; a body too large: 413; too slow: 408; the function down:
  503) are the functions' JSON envelopes with the request id, and every answer carries
  `X-Request-Id`, as at the front door — except a 408 for headers that never ended, which has no
  request id yet (`"-"` in the envelope).

Routes are patched by their VirtualService rule names (Istio names the Envoy route after the rule).
The connection manager's settings apply to every listener of the gateway's Envoy, Knative's
local gateway included: the ingress gateway is assumed to serve Coditect alone (another host on
it would also get the JSON envelopes and the path rules).
"""

from __future__ import annotations

from typing import Any

from coditect.deploy.knative import REQUEST_TIMEOUT
from coditect.deploy.routes import BODY_TIMEOUT, BUFFER_BYTES, LABELS, istio_rules
from coditect.errors import ApiError, NotFound, PayloadTooLarge, RequestTimeout, ServiceUnavailable
from coditect.http import envelope
from coditect.registry.spec import FunctionSpec

GATEWAY_NAMESPACE = "istio-system"  # where the ingress gateway runs (knative-ingress-gateway's pods)
GATEWAY_WORKLOAD = {"istio": "ingressgateway"}
_HCM = "envoy.filters.network.http_connection_manager"
_ROUTER = "envoy.filters.http.router"
_BUFFER_FILTER = "envoy.filters.http.buffer"
_BUFFER = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"
_BUFFER_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute"
REQUEST_ID = "%REQ(X-REQUEST-ID)%"  # Envoy's substitution: the request id the gateway kept or made


def body_limit(spec: FunctionSpec) -> int | None:
    """The most a route of `spec` may have buffered at the gateway, or None: not buffered (the
    relay, and functions that stream a body themselves)."""
    if spec.kind == "asgi" or any(route.raw_body for route in spec.routes):
        return None
    return max([BUFFER_BYTES] + [route.max_body + 1 for route in spec.routes if route.max_body])


def _envoy_quote(text: str) -> str:
    if "%" in text:  # Envoy would read it as the start of a substitution
        raise ValueError(f"a literal % in an envelope: {text}")
    return text


def _local_reply(exc: ApiError) -> dict[str, Any]:
    """A mapper answering Envoy's own `exc.status` replies with the functions' envelope."""
    status = exc.status
    return {
        "filter": {
            "status_code_filter": {
                "comparison": {
                    "op": "EQ",
                    "value": {"default_value": status, "runtime_key": f"coditect.local_reply.{status}"},
                }
            }
        },
        "body_format_override": {
            "text_format_source": {"inline_string": envelope.error_template(exc, REQUEST_ID, _envoy_quote)},
            "content_type": "application/json",
        },
    }


def _connection_manager() -> dict[str, Any]:
    """What is merged into the gateway's HTTP connection manager."""
    return {
        "normalize_path": False,
        "merge_slashes": False,
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        "request_headers_timeout": f"{BODY_TIMEOUT}s",
        "request_timeout": f"{REQUEST_TIMEOUT}s",
        "always_set_request_id_in_response": True,
        "local_reply_config": {
            "mappers": [
                _local_reply(NotFound("No such route.")),
                _local_reply(RequestTimeout()),
                _local_reply(PayloadTooLarge()),
                _local_reply(ServiceUnavailable("The function is starting.")),
            ]
        },
    }


def _buffer_filter() -> dict[str, Any]:
    """The HTTP filter inserted before the router, off by default: it acts only on the routes
    `_route_buffers` turns it on for. Other routes of the same Envoy — Knative's own, on the
    local gateway listener every request crosses next, and any other host the gateway serves —
    are not buffered (an upload the public hop streams must not meet a 1 MiB limit on the next)."""
    return {
        "name": _BUFFER_FILTER,
        "disabled": True,
        "typed_config": {"@type": _BUFFER, "max_request_bytes": BUFFER_BYTES},
    }


def _route_buffers(functions: list[FunctionSpec]) -> dict[str, dict[str, Any]]:
    """VirtualService rule name → the buffer filter's config on it, for every rule whose function
    takes its bodies whole (`body_limit`)."""
    by_name = {spec.name: spec for spec in functions}
    out: dict[str, dict[str, Any]] = {}
    for function, rule in istio_rules(functions):
        limit = body_limit(by_name[function])
        if limit is not None:
            out[rule["name"]] = {"@type": _BUFFER_PER_ROUTE, "buffer": {"max_request_bytes": limit}}
    return out


def envoy_filter(functions: list[FunctionSpec]) -> dict[str, Any]:
    """The EnvoyFilter for the ingress gateway's workload (GATEWAY context only: no sidecar)."""
    hcm = {"filterChain": {"filter": {"name": _HCM}}}
    patches: list[dict[str, Any]] = [
        {
            "applyTo": "NETWORK_FILTER",
            "match": {"context": "GATEWAY", "listener": hcm},
            "patch": {
                "operation": "MERGE",
                "value": {
                    "name": _HCM,
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                        "http_connection_manager.v3.HttpConnectionManager",
                        **_connection_manager(),
                    },
                },
            },
        },
        {
            "applyTo": "HTTP_FILTER",
            "match": {
                "context": "GATEWAY",
                "listener": {"filterChain": {"filter": {"name": _HCM, "subFilter": {"name": _ROUTER}}}},
            },
            "patch": {"operation": "INSERT_BEFORE", "value": _buffer_filter()},
        },
    ]
    for name, per_route in sorted(_route_buffers(functions).items()):
        patches.append(
            {
                "applyTo": "HTTP_ROUTE",
                "match": {"context": "GATEWAY", "routeConfiguration": {"vhost": {"route": {"name": name}}}},
                "patch": {
                    "operation": "MERGE",
                    "value": {"typed_per_filter_config": {_BUFFER_FILTER: per_route}},
                },
            }
        )
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "coditect-edge", "namespace": GATEWAY_NAMESPACE, "labels": LABELS},
        "spec": {"workloadSelector": {"labels": GATEWAY_WORKLOAD}, "configPatches": patches},
    }
