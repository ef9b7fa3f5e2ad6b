"""The rendered Knative Services, ingress routes and image recipe follow their rules for every
function in the registry, and for the kinds of function the registry does not hold yet."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient
from werkzeug.routing import Map, Rule

from coditect import registry
from coditect.deploy import image, knative, relay, routes
from coditect.registry.spec import FunctionSpec, Route

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = (
    FunctionSpec(
        name="ex-signer",
        routes=(Route("ex-signer.login", "POST", "/api/v5/ex/login", auth="none"),),
        signs_tokens=True,
        concurrency=4,
        min_scale=1,
        max_scale=5,
        memory="512Mi",
        cpu="500m",
    ),
    FunctionSpec(
        name="ex-consumer", kind="cloudevent", events=("com.coditect.workspace.requested",), extras=("k8s",)
    ),
    FunctionSpec(
        name="ex-relay",
        kind="asgi",
        extras=("relay",),
        concurrency=8,
        routes=(Route("ex-relay.any", "GET", "/ex-workspaces/<uuid:id>/<path:rest>"),),
    ),
    FunctionSpec(
        name="ex-publisher", publishes=("com.coditect.workspace.requested",), env=(("CODITECT_EXTRA", "1"),)
    ),
)
ALL = (*registry.FUNCTIONS, *EXAMPLES)


def container(svc: dict[str, Any]) -> dict[str, Any]:
    [c] = svc["spec"]["template"]["spec"]["containers"]
    return c


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(svc)["env"]}


def workload(spec: FunctionSpec) -> dict[str, Any]:
    """The Knative Service, or for an ASGI function the Deployment (coditect.deploy.relay)."""
    return relay.deployment(spec) if spec.kind == "asgi" else knative.service(spec)


@pytest.mark.parametrize("spec", [s for s in ALL if s.kind == "asgi"], ids=lambda s: s.name)
def test_asgi_functions_are_deployments_with_an_autoscaler_and_a_drain(spec: FunctionSpec) -> None:
    dep, svc, hpa, pdb = relay.manifests(spec)
    assert (dep["kind"], svc["kind"], hpa["kind"], pdb["kind"]) == (
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    )
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # the pod lives past the drain: readiness fails at SIGTERM, sockets close with 1012 after the drain
    assert pod["terminationGracePeriodSeconds"] > relay.drain_seconds()
    assert container(dep)["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"] == svc["metadata"]["name"]
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"] >= 2
    assert (
        svc["spec"]["selector"]
        == dep["spec"]["selector"]["matchLabels"]
        == pdb["spec"]["selector"]["matchLabels"]
    )
    assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == f"coditect-{spec.name}"
    assert "knative" not in yaml.safe_dump(dep).lower().replace("knative-", "")


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_service_shape(spec: FunctionSpec) -> None:
    svc = workload(spec)
    assert svc["metadata"]["name"] == spec.name and svc["metadata"]["namespace"] == "coditect"
    template = svc["spec"]["template"]
    ann = template["metadata"]["annotations"]
    pod = template["spec"]
    env = env_of(svc)
    if spec.kind == "asgi":
        assert (svc["apiVersion"], svc["kind"]) == ("apps/v1", "Deployment")
    else:
        assert (svc["apiVersion"], svc["kind"]) == ("serving.knative.dev/v1", "Service")
        assert ann["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
        assert ann["autoscaling.knative.dev/metric"] == "concurrency"
        assert ann["autoscaling.knative.dev/min-scale"] == str(spec.min_scale)
        assert ann["autoscaling.knative.dev/max-scale"] == str(spec.max_scale)
        # gunicorn threads == the most requests Knative sends one pod == the autoscaling target
        assert pod["containerConcurrency"] == spec.concurrency == int(env["THREADS"])
        assert ann["autoscaling.knative.dev/target"] == str(spec.concurrency) and env["WORKERS"] == "1"
    probe = container(svc)["readinessProbe"]
    if spec.kind in ("http", "asgi"):
        assert probe["httpGet"] == {"path": "/healthz", "port": 8080}
    else:
        assert probe["tcpSocket"] == {"port": 8080}
    c = container(svc)
    assert c["resources"]["requests"] == {"cpu": spec.cpu, "memory": spec.memory}
    assert c["resources"]["limits"]["memory"] == spec.memory
    assert env["FDB_CLUSTER_FILE"] == "/var/dynamic-conf/fdb.cluster"
    assert env["CODITECT_STORE"] == "fdb://" + env["FDB_CLUSTER_FILE"]
    assert env["CODITECT_KEYS_DIR"] == knative.KEYS_DIR
    assert ("K_SINK" in env) == bool(spec.publishes)
    for name, value in spec.env:
        assert env[name] == value
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/var/dynamic-conf"]]["configMap"]["name"] == "coditect-fdb-config"
    secret = volumes[mounts[knative.KEYS_DIR]]["secret"]["secretName"]
    assert secret == ("coditect-signing-key" if spec.signs_tokens else "coditect-public-keys")
    sc = c["securityContext"]
    assert (
        sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"] == {"drop": ["ALL"]}
    )
    # Knative refuses a pod-level securityContext unless a feature flag is on: container-level only
    assert "securityContext" not in pod and sc["runAsUser"] == sc["runAsGroup"] != 0
    assert re.fullmatch(r"[^:\s]+:[\w][\w.-]*", c["image"]) and not c["image"].endswith(":latest")
    # Field names and types are checked against the kubernetes client's pod model.
    api = ApiClient()
    pod_core = {
        k: v
        for k, v in pod.items()
        if k not in ("containerConcurrency", "timeoutSeconds", "terminationGracePeriodSeconds")
    }
    obj = api.deserialize(json.dumps({"spec": pod_core}), "V1PodTemplateSpec", "application/json")
    assert api.sanitize_for_serialization(obj)["spec"] == pod_core


def test_only_signers_ever_see_the_signing_key() -> None:
    for spec in ALL:
        text = yaml.safe_dump(workload(spec))
        assert ("coditect-signing-key" in text) == spec.signs_tokens, spec.name


def sample(rule: str) -> str:
    def fill(m: re.Match[str]) -> str:
        conv = m.group(1) or ""
        return (
            str(uuid.uuid4()) if conv.startswith("uuid") else ("a/b.txt" if conv.startswith("path") else "k1")
        )

    return re.sub(r"<(?:([^:>]+):)?[^>]+>", fill, rule)


def _string_match(match: dict[str, str], value: str | None) -> bool:
    """Istio StringMatch (regex = RE2 full match)."""
    if value is None:
        return False
    if "regex" in match:
        return re.fullmatch(match["regex"], value) is not None
    if "exact" in match:
        return value == match["exact"]
    return value.startswith(match["prefix"])


def rule_for(
    vs: dict[str, Any], method: str, path: str, headers: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """Istio semantics: the first http rule with a matching entry wins; an entry matches when its
    uri, method and every header match."""
    sent = {k.lower(): v for k, v in (headers or {}).items()}
    for rule in vs["spec"]["http"]:
        for m in rule["match"]:
            if (
                _string_match(m["uri"], path)
                and ("method" not in m or _string_match(m["method"], method))
                and all(_string_match(want, sent.get(name)) for name, want in m.get("headers", {}).items())
            ):
                return dict(rule)
    return None


def route_for(
    vs: dict[str, Any], method: str, path: str, headers: dict[str, str] | None = None
) -> str | None:
    """The function (or the relay) that the VirtualService sends the request to."""
    rule = rule_for(vs, method, path, headers)
    if rule is None:
        return None
    if "rewrite" not in rule:
        return str(rule["route"][0]["destination"]["host"]).split(".", 1)[0]
    return str(rule["rewrite"]["authority"]).split(".", 1)[0]


def gateway_route_for(http_routes: list[dict[str, Any]], method: str, path: str) -> str | None:
    """Gateway API semantics where they are defined: a match with a method beats one without; a
    regex (full match) beats the /api/v5/ PathPrefix. Two regex matches must never both apply."""
    hits: list[tuple[int, str]] = []
    for route in http_routes:
        for rule in route["spec"]["rules"]:
            for m in rule["matches"]:
                p = m["path"]
                if p["type"] == "RegularExpression":
                    ok, rank = re.fullmatch(p["value"], path) is not None, 2
                else:
                    prefix = p["value"].rstrip("/")
                    ok, rank = path == prefix or path.startswith(prefix + "/"), 0
                if ok and m.get("method", method) == method:
                    target = rule["filters"][0]["urlRewrite"]["hostname"] if rule.get("filters") else None
                    name = target.split(".", 1)[0] if target else rule["backendRefs"][0]["name"]
                    hits.append((rank + (1 if "method" in m else 0), name))
    if not hits:
        return None
    best = max(rank for rank, _ in hits)
    winners = {name for rank, name in hits if rank == best}
    assert len(winners) == 1, f"{method} {path}: ambiguous between {winners}"
    return winners.pop()


def test_ingress_sends_every_route_to_its_function_like_the_functions_own_router() -> None:
    shared = (
        FunctionSpec(name="ex-me", routes=(Route("ex-me.get", "GET", "/api/v5/ex/me"),)),
        FunctionSpec(name="ex-profile", routes=(Route("ex-profile.patch", "PATCH", "/api/v5/ex/me"),)),
        FunctionSpec(
            name="ex-files",
            routes=(
                Route("ex-files.get", "GET", "/api/v5/ex/<uuid:sid>/files/<path:path>"),
                Route("ex-files.move", "POST", "/api/v5/ex/<uuid:sid>/files:move"),
            ),
        ),
        FunctionSpec(name="ex-sessions", routes=(Route("ex-sessions.get", "GET", "/api/v5/ex/<uuid:id>"),)),
    )  # the registry's own `console` (GET / and /assets/...) is in ALL: the root is routed like any path
    specs = [*[s for s in ALL if s.name != "ex-relay"], *shared]
    vs = routes.virtual_service(specs)
    gw = routes.http_routes(specs)
    for spec in specs:
        for route in spec.routes:
            path = sample(route.path)
            assert Map([Rule(route.path, methods=[route.method])]).bind("x").match(path, route.method)
            for lookup in (lambda m, p: route_for(vs, m, p), lambda m, p: gateway_route_for(gw, m, p)):
                assert lookup(route.method, path) == spec.name, (route.name, path)
                if not path.endswith("/"):  # the root has no trailing-slash twin ("//" is another path)
                    assert lookup(route.method, path + "/") == spec.name
    for lookup in (lambda m, p: route_for(vs, m, p), lambda m, p: gateway_route_for(gw, m, p)):
        assert lookup("PATCH", "/api/v5/ex/me") == "ex-profile"
        assert lookup("GET", "/api/v5/ex/me") == "ex-me"
        assert lookup("DELETE", "/api/v5/ex/me") == "ex-me"  # falls back to one owner: 405 there
        assert lookup("GET", "/api/v5/ex/not-a-uuid") == "health"  # unknown: 404 envelope
        assert lookup("GET", "/api/v5/ex/" + str(uuid.uuid4()) + "/files:move") == "ex-files"
        # the relay owns /workspaces and everything under it, any method; nothing else leaks out
        ws = f"/workspaces/{uuid.uuid4()}/index.html"
        assert lookup("GET", ws) == "relay" and lookup("POST", ws) == "relay"
        assert lookup("GET", "/workspaces") == "relay" and lookup("GET", "/workspacesX") is None
        assert lookup("GET", "/metrics") is None and lookup("GET", "/healthz") is None
        assert lookup("GET", "/api/v5/health/../users/me") == "health"  # no normalisation: 404 there
    for rule in vs["spec"]["http"]:
        if rule["name"].startswith("relay"):
            assert rule["route"][0]["destination"]["host"] == "relay.coditect.svc.cluster.local"
            continue
        assert rule["route"][0]["destination"]["host"] == routes.LOCAL_GATEWAY
        assert rule["rewrite"]["authority"].endswith(".coditect.svc.cluster.local")
    assert all(len(r["spec"]["rules"]) <= 16 for r in gw)


@pytest.mark.parametrize(
    ("method", "path", "headers", "replayed"),
    [
        ("GET", "/api/v5/sessions", {}, True),
        ("PUT", "/api/v5/sessions/{id}/files/a.txt", {}, True),
        ("DELETE", "/api/v5/sessions/{id}", {}, True),
        ("POST", "/api/v5/sessions", {"Idempotency-Key": "k1"}, True),  # honoured: replayed
        ("POST", "/api/v5/sessions", {}, False),
        ("POST", "/api/v5/workspaces", {"Idempotency-Key": "k1"}, True),  # shared path, by method
        ("POST", "/api/v5/workspaces", {}, False),
        ("POST", "/api/v5/auth/login", {"Idempotency-Key": "k1"}, False),  # login ignores the key
        ("POST", "/api/v5/sessions/{id}/files:move", {}, False),
        ("GET", "/workspaces/{id}/", {}, True),
        ("POST", "/workspaces/{id}/api", {}, False),  # the relay: a user's program, safe methods only
        ("PUT", "/workspaces/{id}/api", {}, False),
    ],
)
def test_the_ingress_replays_only_what_a_repeat_cannot_double(
    method: str, path: str, headers: dict[str, str], replayed: bool
) -> None:
    """Istio: every rule retries a failed connect once; a connection reset before the answer
    (`reset`) only for idempotent methods and keyed POSTs where honoured (the front door's rule)."""
    vs = routes.virtual_service(list(registry.FUNCTIONS))
    rule = rule_for(vs, method, path.format(id=uuid.uuid4()), headers)
    assert rule is not None
    retry_on = set(rule["retries"]["retryOn"].split(","))
    assert rule["retries"]["attempts"] == 1 and {"connect-failure", "refused-stream"} <= retry_on
    assert ("reset" in retry_on) is replayed, (rule["name"], retry_on)
    assert all("retries" in r for r in vs["spec"]["http"])


def test_the_public_tickets_point_at_a_routed_path() -> None:
    """Tickets point at <public base URL>/workspaces/{id}/: the ingress must route it to the relay."""
    vs = routes.virtual_service(list(registry.FUNCTIONS))
    path = f"/workspaces/{uuid.uuid4()}/"
    assert route_for(vs, "GET", path) == "relay"
    assert gateway_route_for(routes.http_routes(list(registry.FUNCTIONS)), "GET", path) == "relay"


def test_image_recipe_pins_the_fdb_client_of_the_bindings_and_builds_each_function() -> None:
    pin = re.search(r'"foundationdb==([\d.]+)"', (ROOT / "shared" / "pyproject.toml").read_text())
    assert pin and image.FDB_VERSION == pin.group(1)
    script = image.build_script(list(ALL))
    assert "build ex-consumer k8s cloudevent 0" in script and "build ex-relay relay asgi 0" in script
    assert "build ex-signer '' http 0" in script and "build cron k8s cloudevent 1" in script
    assert "ARG FUNCTION" in image.DOCKERFILE and "libfdb_c.so" in image.DOCKERFILE
    assert "sha256sum -c" in image.DOCKERFILE and "USER 65532" in image.DOCKERFILE
    # the final stage installs the function's extras, from the wheels built for them only
    assert image.INSTALL_COMMAND in image.DOCKERFILE and "--no-index" in image.INSTALL_COMMAND
    assert '"coditect${EXTRAS:+[$EXTRAS]}"' in image.INSTALL_COMMAND
    assert "fdbbackup" in image.DOCKERFILE and "--target sync" in script
