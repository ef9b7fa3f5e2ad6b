"""FAKE Kubernetes API server: just the few endpoints `KubernetesProvisioner` calls. Not Kubernetes.

No Kubernetes API server can run on the build machines, so the backend's API calls are exercised
against this in-process HTTP fake, with a real ``kubernetes.client.ApiClient`` pointed at it.
It implements, for one or more namespaces, with real Kubernetes ``Status`` bodies on errors:

    POST/GET(list, ?labelSelector=k=v,…)  /api/v1/namespaces/{ns}/pods|services
    GET/DELETE                            /api/v1/namespaces/{ns}/pods|services/{name}
    POST/GET(list)                        /apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies
    GET/DELETE                            /apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}

Duplicate create → 409 AlreadyExists; missing → 404 NotFound. What it does NOT do: no scheduler
or kubelet (a pod stays Pending until a test scripts its status), no validation or defaulting
beyond uid/namespace/timestamps, no watches, no auth. Deleting a pod deletes the objects whose
ownerReferences name it at once (the real garbage collector does so eventually).

Scripting: `script_pod(name, (n, status), …)` makes GET number n+1 onward of that pod return
`status` (the last matching step wins); `fail_next(method, resource, code, reason, message)`
injects an error (e.g. 403 "exceeded quota", 500) for the next matching request;
`linger(name, reads)` keeps that pod after its DELETE, terminating (deletionTimestamp set), for
`reads` more GETs (a real pod lives through its grace period).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes.client

_PATH = re.compile(
    r"^/(?:api/v1|apis/networking\.k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<resource>pods|services|secrets|networkpolicies)(?:/(?P<name>[^/]+))?$"
)
_KINDS = {
    "pods": ("v1", "Pod"),
    "services": ("v1", "Service"),
    "secrets": ("v1", "Secret"),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy"),
}
_TS = "2025-01-01T00:00:00Z"


def status_body(
    code: int, reason: str, message: str, name: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    """A Kubernetes ``Status`` object as the API server sends with an error."""
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": reason, "details": {"name": name, "kind": kind}, "code": code,
    }  # fmt: skip


# -- pod statuses for scripting ---------------------------------------------------------------------


def _container(
    state: dict[str, Any], *, ready: bool = False, restarts: int = 0, last: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": "workspace", "image": "img", "imageID": "", "ready": ready, "restartCount": restarts,
        "started": ready, "state": state, "lastState": last or {},
    }  # fmt: skip


def _cond(kind: str, status: str, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    cond = {"type": kind, "status": status, "lastTransitionTime": _TS}
    return cond | ({"reason": reason} if reason else {}) | ({"message": message} if message else {})


def ready_status() -> dict[str, Any]:
    return {
        "phase": "Running",
        "conditions": [
            _cond("PodScheduled", "True"),
            _cond("ContainersReady", "True"),
            _cond("Ready", "True"),
        ],
        "containerStatuses": [_container({"running": {"startedAt": _TS}}, ready=True)],
    }


def waiting_status(reason: str, message: str = "") -> dict[str, Any]:
    """Scheduled, container waiting with `reason` (ErrImagePull, ImagePullBackOff, …)."""
    return {
        "phase": "Pending",
        "conditions": [_cond("PodScheduled", "True"), _cond("Ready", "False", "ContainersNotReady")],
        "containerStatuses": [_container({"waiting": {"reason": reason, "message": message}})],
    }


def unschedulable_status(message: str = "0/3 nodes are available: 3 Insufficient cpu.") -> dict[str, Any]:
    return {"phase": "Pending", "conditions": [_cond("PodScheduled", "False", "Unschedulable", message)]}


def crash_loop_status(exit_code: int = 1, restarts: int = 3) -> dict[str, Any]:
    last = {"terminated": {"exitCode": exit_code, "reason": "Error", "startedAt": _TS, "finishedAt": _TS}}
    return {
        "phase": "Running",
        "conditions": [_cond("PodScheduled", "True"), _cond("Ready", "False", "ContainersNotReady")],
        "containerStatuses": [
            _container(
                {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                restarts=restarts,
                last=last,
            )
        ],
    }


@dataclass
class _Failure:
    method: str
    resource: str
    code: int
    reason: str
    message: str


class FakeKubernetesAPI:
    """The fake server. Use as a context manager; `api_client()` gives a real client pointed at it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name) -> object
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self._scripts: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._linger: dict[str, int] = {}
        self._gets: Counter[str] = Counter()
        self._failures: list[_Failure] = []
        self._version = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without NODELAY, delayed ACKs add 40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKubernetesAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(kubernetes.client.Configuration(host=self.url))

    # -- test controls ------------------------------------------------------------------------------

    def script_pod(self, name: str, *steps: tuple[int, dict[str, Any]]) -> None:
        with self.lock:
            self._scripts[name] = sorted(steps, key=lambda s: s[0])

    def linger(self, name: str, reads: int) -> None:
        with self.lock:
            self._linger[name] = reads

    def fail_next(self, method: str, resource: str, code: int, reason: str, message: str) -> None:
        with self.lock:
            self._failures.append(_Failure(method, resource, code, reason, message))

    def get(self, resource: str, name: str, namespace: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get((resource, namespace, name))

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` as if created (fills uid etc.); for seeding pre-existing objects."""
        with self.lock:
            return self._store(resource, obj["metadata"]["namespace"], obj)

    # -- the HTTP side --------------------------------------------------------------------------------

    def _store(self, resource: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        meta.update(
            namespace=ns, uid=str(uuid.uuid4()), resourceVersion=str(self._version), creationTimestamp=_TS
        )
        if resource == "pods":
            obj.setdefault("status", {"phase": "Pending"})
        if resource == "services":
            obj["spec"]["clusterIP"] = f"10.96.0.{self._version % 250 + 1}"
        self.objects[(resource, ns, meta["name"])] = obj
        return obj

    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = json.loads(req.rfile.read(length) or b"null")
        with self.lock:
            self.requests.append((method, url.path))
            code, payload = self._route(method, url.path, parse_qs(url.query), body)
        data = json.dumps(payload).encode()
        req.send_response(code)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def _list(
        self, resource: str, ns: str, query: dict[str, list[str]], api_version: str, kind: str
    ) -> dict[str, Any]:
        wanted = dict(p.split("=", 1) for p in query.get("labelSelector", [""])[0].split(",") if p)
        items = [
            o for (r, n, _), o in sorted(self.objects.items())
            if r == resource and n == ns and wanted.items() <= o["metadata"].get("labels", {}).items()
        ]  # fmt: skip
        meta = {"resourceVersion": str(self._version)}
        return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": meta, "items": items}

    def _delete(self, resource: str, ns: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        del self.objects[(resource, ns, name)]
        self._gets.pop(name, None)
        uid = obj["metadata"]["uid"]
        for key, other in list(self.objects.items()):  # immediate "garbage collection"
            if any(ref.get("uid") == uid for ref in other["metadata"].get("ownerReferences", [])):
                del self.objects[key]
        if resource == "networkpolicies":
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return obj

    def _read(self, resource: str, ns: str, name: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """GET of one object: a lingering pod disappears after its reads; a scripted pod's status
        follows its script."""
        if resource == "pods" and obj["metadata"].get("deletionTimestamp") and name in self._linger:
            self._linger[name] -= 1
            if self._linger[name] < 0:
                del self.objects[(resource, ns, name)], self._linger[name]
                return 404, status_body(404, "NotFound", f'{resource} "{name}" not found', name, resource)
            return 200, obj
        if resource == "pods":
            self._gets[name] += 1
            for after, status in self._scripts.get(name, []):
                if self._gets[name] > after:
                    obj["status"] = json.loads(json.dumps(status))
        return 200, obj

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, Any]]:
        m = _PATH.match(path)
        if not m:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        ns, resource, name = m["ns"], m["resource"], m["name"]
        for failure in self._failures:
            if failure.method == method and failure.resource == resource:
                self._failures.remove(failure)
                return failure.code, status_body(
                    failure.code, failure.reason, failure.message, name, resource
                )
        api_version, kind = _KINDS[resource]
        if name is None and method == "POST":
            name = body["metadata"]["name"]
            if (resource, ns, name) in self.objects:
                return 409, status_body(
                    409, "AlreadyExists", f'{resource} "{name}" already exists', name, resource
                )
            return 201, self._store(resource, ns, body)
        if name is None and method == "GET":
            return 200, self._list(resource, ns, query, api_version, kind)
        obj = self.objects.get((resource, ns, name or ""))
        if obj is None or name is None:
            return 404, status_body(404, "NotFound", f'{resource} "{name}" not found', name, resource)
        if method == "GET":
            return self._read(resource, ns, name, obj)
        if method == "DELETE" and resource == "pods" and self._linger.get(name, 0) > 0:
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = _TS
            return 200, obj
        if method == "DELETE":
            return 200, self._delete(resource, ns, name, obj)
        return 405, status_body(
            405, "MethodNotAllowed", f"{method} is not supported by the fake", name, resource
        )
