"""The Kubernetes pod of a synced workspace (issue 11): built by pure functions, validated through
the `kubernetes` client's models, and sent to the in-process FAKE API (tests/fakes/k8s_api.py)."""

from __future__ import annotations

import dataclasses

import kubernetes.client
import pytest

from coditect.workspaces.k8s import objects
from coditect.workspaces.k8s.backend import KubernetesProvisioner
from coditect.workspaces.k8s.objects import WorkspaceTemplate
from tests.fakes.k8s_api import FakeKubernetesAPI, ready_status

NS = "workspaces"
TEMPLATE = WorkspaceTemplate(
    image="ghcr.io/coditect/theia:1.52.0", sync_image="ghcr.io/coditect/sync:1.0.0", sync_flush_timeout=20
)
CREDENTIAL = "cwc_" + "s" * 43


def synced(make_spec):  # type: ignore[no-untyped-def]
    return dataclasses.replace(make_spec(), credential=CREDENTIAL, api_url="http://api.coditect.svc")


def test_sidecar_shared_tree_secret_only_in_the_sidecar_and_grace(make_spec) -> None:
    spec = synced(make_spec)
    pod = objects.build_pod(spec, TEMPLATE, NS)
    kubernetes.client.V1Pod.model_validate(pod)  # a valid Pod for the client's schema
    ps = pod["spec"]
    [ide], [sidecar] = ps["containers"], ps["initContainers"]
    assert sidecar["restartPolicy"] == "Always"  # native sidecar: starts first, stops after the IDE
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/healthz", "port": objects.SYNC_HEALTH_PORT}
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/healthz"
    tree = {"name": objects.TREE_VOLUME, "mountPath": objects.TREE_PATH}
    assert (
        tree in ide["volumeMounts"] and tree in sidecar["volumeMounts"] and ide["workingDir"] == "/workspace"
    )
    assert {"name": objects.TREE_VOLUME, "emptyDir": {"sizeLimit": "10Gi"}} in ps["volumes"]
    secret_volume = next(v for v in ps["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"] == objects.workload_name(spec.workspace_id)
    mounts_of = {c["name"]: {m["name"] for m in c["volumeMounts"]} for c in (ide, sidecar)}
    assert secret_volume["name"] in mounts_of["sync"] and secret_volume["name"] not in mounts_of["workspace"]
    assert ps["automountServiceAccountToken"] is False and ps["enableServiceLinks"] is False
    assert ps["terminationGracePeriodSeconds"] >= 20 + 5  # the flush bound + margin
    argv = sidecar["command"]
    assert argv[:3] == ["python", "-m", "coditect.sync"]
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert flags == {
        "--api-url": "http://api.coditect.svc", "--session-id": spec.session_id,
        "--workspace-id": spec.workspace_id, "--root": "/workspace",
        "--credential-file": "/var/run/coditect/credential", "--health-port": "8081",
        "--state-file": "/var/lib/coditect-sync/state.json", "--flush-timeout": "20",
    }  # fmt: skip
    assert CREDENTIAL not in repr(pod)  # the credential is only in the Secret
    secret = objects.build_secret(spec, NS, "uid-1")
    kubernetes.client.V1Secret.model_validate(secret)
    assert secret["stringData"] == {"credential": CREDENTIAL}


def test_no_credential_no_sidecar(make_spec) -> None:
    pod = objects.build_pod(make_spec(), TEMPLATE, NS)
    assert "initContainers" not in pod["spec"]
    assert all("secret" not in v for v in pod["spec"]["volumes"])


def test_the_backend_creates_and_deletes_the_secret_with_the_pod(make_spec) -> None:
    spec = synced(make_spec)
    name = objects.workload_name(spec.workspace_id)
    with FakeKubernetesAPI() as fake:
        prov = KubernetesProvisioner(
            NS, TEMPLATE, fake.api_client(), relay_namespace="coditect", start_timeout=30, poll_interval=0.02
        )
        fake.script_pod(name, (1, ready_status()))
        prov.start(spec)
        secret = fake.get("secrets", name, NS)
        assert secret is not None and secret["stringData"] == {"credential": CREDENTIAL}
        pod_uid = fake.get("pods", name, NS)["metadata"]["uid"]
        assert secret["metadata"]["ownerReferences"][0]["uid"] == pod_uid
        prov.stop(spec.workspace_id)
        assert fake.get("secrets", name, NS) is None


@pytest.mark.parametrize("field", ["credential", "api_url"])
def test_a_spec_missing_either_gets_no_sidecar(make_spec, field: str) -> None:
    spec = dataclasses.replace(synced(make_spec), **{field: None})
    assert not objects.has_sync(spec, TEMPLATE)
