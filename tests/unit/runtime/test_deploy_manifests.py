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
from coditect.deploy import image, knative, routes
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


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_service_shape(spec: FunctionSpec) -> None:
    svc = knative.service(spec)
    assert (svc["apiVersion"], svc["kind"]) == ("serving.knative.dev/v1", "Service")
    assert svc["metadata"]["name"] == spec.name and svc["metadata"]["namespace"] == "coditect"
    template = svc["spec"]["template"]
    ann = template["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert ann["autoscaling.knative.dev/metric"] == "concurrency"
    assert ann["autoscaling.knative.dev/min-scale"] == str(spec.min_scale)
    assert ann["autoscaling.knative.dev/max-scale"] == str(spec.max_scale)
    pod = template["spec"]
    env = env_of(svc)
    if spec.kind == "asgi":
        assert pod["containerConcurrency"] == 0
        assert int(ann["autoscaling.knative.dev/target"]) >= knative.ASGI_MIN_TARGET
    else:
        # gunicorn threads == the most requests Knative sends one pod == the autoscaling target
        assert pod["containerConcurrency"] == spec.concurrency == int(env["THREADS"])
        assert ann["autoscaling.knative.dev/target"] == str(spec.concurrency) and env["WORKERS"] == "1"
    probe = container(svc)["readinessProbe"]
    if spec.kind == "http":
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
    assert pod["securityContext"]["runAsUser"] != 0
    assert re.fullmatch(r"[^:\s]+:[\w][\w.-]*", c["image"]) and not c["image"].endswith(":latest")
    # Field names and types are checked against the kubernetes client's pod model.
    api = ApiClient()
    pod_core = {k: v for k, v in pod.items() if k not in ("containerConcurrency", "timeoutSeconds")}
    obj = api.deserialize(json.dumps({"spec": pod_core}), "V1PodTemplateSpec", "application/json")
    assert api.sanitize_for_serialization(obj)["spec"] == pod_core


def test_only_signers_ever_see_the_signing_key() -> None:
    for spec in ALL:
        text = yaml.safe_dump(knative.service(spec))
        assert ("coditect-signing-key" in text) == spec.signs_tokens, spec.name


def sample(rule: str) -> str:
    def fill(m: re.Match[str]) -> str:
        conv = m.group(1) or ""
        return (
            str(uuid.uuid4()) if conv.startswith("uuid") else ("a/b.txt" if conv.startswith("path") else "k1")
        )

    return re.sub(r"<(?:([^:>]+):)?[^>]+>", fill, rule)


def route_for(vs: dict[str, Any], method: str, path: str) -> str | None:
    """Istio semantics: the first http rule with a matching entry wins (regex = RE2 full match)."""
    for rule in vs["spec"]["http"]:
        for m in rule["match"]:
            uri = m["uri"]
            ok = re.fullmatch(uri["regex"], path) if "regex" in uri else path.startswith(uri["prefix"])
            if ok and m.get("method", {}).get("exact", method) == method:
                return str(rule["rewrite"]["authority"]).split(".", 1)[0]
    return None


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
    )
    specs = [*ALL, *shared]
    vs = routes.virtual_service(specs)
    for spec in specs:
        for route in spec.routes:
            path = sample(route.path)
            assert Map([Rule(route.path, methods=[route.method])]).bind("x").match(path, route.method)
            assert route_for(vs, route.method, path) == spec.name, (route.name, path)
            if route.path != "/":  # the root has no trailing-slash twin ("//" is another path)
                assert route_for(vs, route.method, path + "/") == spec.name
    assert route_for(vs, "PATCH", "/api/v5/ex/me") == "ex-profile"
    assert route_for(vs, "GET", "/api/v5/ex/me") == "ex-me"
    assert route_for(vs, "DELETE", "/api/v5/ex/me") == "ex-me"  # falls back to one owner: 405 there
    assert route_for(vs, "GET", "/api/v5/ex/not-a-uuid") == "health"  # unknown: 404 envelope
    assert route_for(vs, "GET", "/api/v5/ex/" + str(uuid.uuid4()) + "/files:move") == "ex-files"
    assert route_for(vs, "GET", "/metrics") is None and route_for(vs, "GET", "/healthz") is None
    for rule in vs["spec"]["http"]:
        assert rule["route"][0]["destination"]["host"] == routes.LOCAL_GATEWAY
        assert rule["rewrite"]["authority"].endswith(".coditect.svc.cluster.local")


def test_image_recipe_pins_the_fdb_client_of_the_bindings_and_builds_each_function() -> None:
    pin = re.search(r'"foundationdb==([\d.]+)"', (ROOT / "shared" / "pyproject.toml").read_text())
    assert pin and image.FDB_VERSION == pin.group(1)
    script = image.build_script(list(ALL))
    assert "build ex-consumer k8s cloudevent" in script and "build ex-relay relay asgi" in script
    assert "build ex-signer '' http" in script
    assert "ARG FUNCTION" in image.DOCKERFILE and "libfdb_c.so" in image.DOCKERFILE
    assert "sha256sum -c" in image.DOCKERFILE and "USER 65532" in image.DOCKERFILE
