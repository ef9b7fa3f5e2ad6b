"""The local stack end to end: the front door, the broker, restarts and a clean stop, over sockets."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from coditect import registry
from tests.e2e.stack import RunningStack, start_stack, wait_for
from tests.helpers import check_envelope

pytestmark = pytest.mark.e2e
PING = "com.coditect.test.ping"


def test_health_through_the_front_door(stack: RunningStack) -> None:
    with stack.client() as http:
        response = http.get("/api/v5/health", headers={"X-Request-Id": "e2e-health-0001"})
    data = check_envelope(response, 200)
    assert data["service"] == "coditect-v5-api" and data["status"] == "healthy"
    assert response.headers["X-Request-Id"] == "e2e-health-0001"  # the function saw the same id


def test_unknown_path_is_a_404_envelope(stack: RunningStack) -> None:
    with stack.client() as http:
        check_envelope(http.get("/api/v5/no-such-thing"), 404, "not_found")
        check_envelope(http.get("/elsewhere"), 404, "not_found")


def test_wrong_method_is_a_405_with_allow(stack: RunningStack) -> None:
    with stack.client() as http:
        response = http.delete("/api/v5/health")
    check_envelope(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_every_registry_function_runs_or_is_reported_skipped(stack: RunningStack) -> None:
    state = stack.state()["functions"]
    for spec in registry.FUNCTIONS:
        present = (Path(__file__).resolve().parents[2] / spec.source).is_file()
        assert (state[spec.name]["pid"] is not None) == present, spec.name
        if not present:
            assert f"skipping {spec.name}" in stack.output()


def _post_event(stack: RunningStack, data: dict[str, object], structured: bool = False) -> str:
    event_id = str(uuid.uuid4())
    if structured:
        body = {"specversion": "1.0", "id": event_id, "source": "/e2e", "type": PING, "data": data}
        headers = {"Content-Type": "application/cloudevents+json"}
        response = httpx.post(stack.broker_url, content=json.dumps(body), headers=headers)
    else:
        headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/e2e", "ce-type": PING,
                   "Content-Type": "application/json"}  # fmt: skip
        response = httpx.post(stack.broker_url, content=json.dumps(data), headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["subscribers"] == 1
    return event_id


def _deliveries(stack: RunningStack, event_id: str) -> list[dict[str, object]]:
    path = stack.data_dir / "e2e-sink.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [record for record in map(json.loads, lines) if record["id"] == event_id]


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_an_event_reaches_its_subscriber(stack: RunningStack, structured: bool) -> None:
    event_id = _post_event(stack, {"hello": "world"}, structured)
    records = wait_for(lambda: _deliveries(stack, event_id), 30, "the delivery")
    assert records[0]["type"] == PING and records[0]["data"] == {"hello": "world"}


def test_failed_deliveries_are_retried(stack: RunningStack) -> None:
    event_id = _post_event(stack, {"fail_first": 2})
    wait_for(lambda: len(_deliveries(stack, event_id)) >= 3, 30, "three attempts")
    time.sleep(0.5)  # no fourth attempt follows the one that succeeded
    assert len(_deliveries(stack, event_id)) == 3
    assert (
        event_id not in (stack.data_dir / "dead-letter.jsonl").read_text()
        if (stack.data_dir / "dead-letter.jsonl").exists()
        else True
    )


def test_an_undeliverable_event_is_dead_lettered(stack: RunningStack) -> None:
    event_id = _post_event(stack, {"always_fail": True})
    dead_letter = stack.data_dir / "dead-letter.jsonl"

    def dead() -> list[dict[str, object]]:
        lines = dead_letter.read_text().splitlines() if dead_letter.exists() else []
        return [r for r in map(json.loads, lines) if r["event"]["id"] == event_id]

    (record,) = wait_for(dead, 30, "the dead-letter record")
    assert record["subscriber"] == "e2e_sink" and record["attempts"] == 4
    assert record["reason"] == "HTTP 500" and record["event"]["data"] == {"always_fail": True}
    assert len(_deliveries(stack, event_id)) == 4


def test_the_broker_refuses_what_is_not_a_cloudevent(stack: RunningStack) -> None:
    assert (
        httpx.post(stack.broker_url, content=b"{}", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    assert httpx.get(stack.broker_url).status_code == 405


def _group_members(pgids: set[int]) -> list[int]:
    """Live (non-zombie) processes whose process group is one of `pgids`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) in pgids:
            found.append(int(entry))
    return found


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class _Stream:
    """Requests one after another (a steady client) until stopped; every status it got."""

    def __init__(self, url: str) -> None:
        self.url, self.statuses, self.done = url, [], threading.Event()  # type: ignore[var-annotated]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.done.is_set():
                try:
                    self.statuses.append(http.get(self.url).status_code)
                except httpx.HTTPError as exc:
                    self.statuses.append(type(exc).__name__)

    def stop(self) -> list[int | str]:
        self.done.set()
        self.thread.join(60)
        return list(self.statuses)


def test_a_killed_function_is_restarted_and_sigterm_leaves_no_orphans(tmp_path: Path) -> None:
    """Each HTTP function runs as two processes (CODITECT_REPLICAS): one killed, the other keeps
    answering every request while the first is restarted."""
    running = start_stack(tmp_path)
    try:
        replicas = running.state()["functions"]["health"]["replicas"]
        assert len(replicas) == 2 and replicas[0]["pid"] == running.pid("health")
        assert Path(replicas[1]["log"]) == running.data_dir / "logs" / "health.2.log"
        other = replicas[1]["pid"]
        stream = _Stream(running.url + "/api/v5/health")
        wait_for(lambda: len(stream.statuses) > 20, 30, "requests before the kill")
        old = running.pid("health")
        os.kill(old, signal.SIGKILL)
        new = wait_for(
            lambda: (
                running.state()["functions"]["health"]["pid"] not in (None, old)
                and running.state()["functions"]["health"]["pid"]
            ),
            30,
            "the restarted health function",
        )
        wait_for(lambda: httpx.get(running.url + "/api/v5/health").status_code == 200, 30, "health again")
        assert running.state()["functions"]["health"]["restarts"] == 1
        assert "health exited with signal SIGKILL" in running.output()
        wait_for(lambda: "health restarted" in running.output(), 30, "the restart report")
        statuses = stream.stop()
        assert len(statuses) > 40 and set(statuses) == {200}, [s for s in statuses if s != 200]
        assert running.state()["functions"]["health"]["replicas"][1]["pid"] == other  # untouched
        assert "exited with signal SIGKILL; restarting" in running.log("health")
        assert new != old
        pgids = {
            replica["pid"] for info in running.state()["functions"].values() for replica in info["replicas"]
        }
        assert len(pgids) > len(registry.FUNCTIONS)  # the second processes are in there
        # The front door is supervised like a function: killed, it is restarted and answers again.
        killed = running.state()["frontdoor"]["pid"]
        assert killed and _group_members({killed}), "the front door (caddy) runs in its own process group"
        os.kill(killed, signal.SIGKILL)
        door = wait_for(
            lambda: (
                running.state()["frontdoor"]["pid"] not in (None, killed)
                and running.state()["frontdoor"]["pid"]
            ),
            30,
            "the restarted front door",
        )
        wait_for(lambda: _answers(running.url + "/api/v5/health"), 30, "health through the new front door")
        assert (
            running.state()["frontdoor"]["restarts"] == 1
            and "frontdoor exited with signal SIGKILL" in running.output()
        )
        pgids.add(door)
        assert _group_members(pgids), "the function process groups are alive before the stop"
    finally:
        status = running.stop(signal.SIGTERM)
    assert status == 0, running.output()
    assert _group_members(pgids) == []
    assert _group_members({running.process.pid}) == []
    assert not (running.data_dir / "devstack.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.url + "/api/v5/health")


def _relay_running(stack: RunningStack) -> bool:
    relays = [spec.name for spec in registry.FUNCTIONS if spec.kind == "asgi"]
    return bool(relays) and stack.state()["functions"][relays[0]]["pid"] is not None


def test_workspace_http_and_websocket_go_to_the_relay(stack: RunningStack) -> None:
    """Without credentials the relay answers 401, also to a WebSocket upgrade (api-v5.md, relay)."""
    if not _relay_running(stack):
        pytest.skip("no relay function in this checkout yet")
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    path = f"/workspaces/{uuid.uuid4()}/index.html"
    with stack.client() as http:
        assert http.get(path).status_code == 401
    with pytest.raises(InvalidStatus) as caught:
        connect(stack.url.replace("http", "ws") + path, open_timeout=10).close()
    assert caught.value.response.status_code == 401
