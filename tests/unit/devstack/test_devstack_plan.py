"""What the local stack starts: every registry function, with Knative's command line and env."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from coditect import registry
from coditect.devstack.plan import Planned, StackSettings, function_specs, plan
from coditect.registry.spec import FunctionSpec

ROOT = Path(__file__).resolve().parents[3]


def settings(tmp_path: Path, extra: Path | None = None) -> StackSettings:
    return StackSettings(root=ROOT, data_dir=tmp_path, extra=extra)


def test_every_registry_function_is_planned_on_its_own_port(tmp_path: Path) -> None:
    planned = plan(settings(tmp_path))
    assert [p.name for p in planned] == [spec.name for spec in registry.FUNCTIONS]
    ports = [port for p in planned for port in p.ports]
    assert len(set(ports)) == len(ports)
    assert all(p.source == ROOT / "functions" / p.name / "main.py" for p in planned)


def test_no_function_is_planned_on_the_front_doors_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The front door binds after the functions, so a port the kernel offers while they are
    planned may be its own (CI lost a run to a relay on the front door's port)."""
    from coditect.devstack import plan as module

    offered = iter([8080, 8080, 9001, 9001, *range(20000, 20200)])  # the door's port, then a repeat
    monkeypatch.setattr(module, "free_port", lambda host="127.0.0.1": next(offered))
    ports = [port for p in plan(settings(tmp_path)) for port in p.ports]
    assert 8080 not in ports and ports[0] == 9001
    assert len(set(ports)) == len(ports)


def test_http_and_cloudevent_functions_run_under_functions_framework(tmp_path: Path) -> None:
    spec = FunctionSpec("thing", kind="cloudevent", concurrency=3, env=(("EXTRA", "1"),))
    p = Planned(spec, tmp_path / "main.py", 12345)
    assert p.argv() == [sys.executable, "-m", "functions_framework", "--target", "handle", "--source",
                        str(tmp_path / "main.py"), "--signature-type", "cloudevent",
                        "--host", "127.0.0.1", "--port", "12345"]  # fmt: skip
    env = p.env(settings(tmp_path), "http://127.0.0.1:9/", {"PATH": "/bin"})
    assert env["THREADS"] == "3" and env["WORKERS"] == "1" and env["PORT"] == "12345"
    assert env["K_SINK"] == "http://127.0.0.1:9/" and env["K_SERVICE"] == "thing"
    assert env["CODITECT_DATA_DIR"] == str(tmp_path) and env["EXTRA"] == "1" and env["PATH"] == "/bin"


def test_the_asgi_relay_runs_under_the_relay_server_as_in_the_container(tmp_path: Path) -> None:
    p = Planned(FunctionSpec("relay", kind="asgi"), tmp_path / "relay" / "main.py", 1)
    assert p.argv()[:7] == [sys.executable, "-m", "coditect.relay", "--app", "main:app", "--app-dir",
                            str(tmp_path / "relay")]  # fmt: skip


def test_only_token_signers_get_the_private_keys(tmp_path: Path) -> None:
    s = settings(tmp_path)
    signer = Planned(FunctionSpec("login", signs_tokens=True), tmp_path, 1).env(s, "", {})
    verifier = Planned(FunctionSpec("sessions"), tmp_path, 1).env(s, "", {})
    assert signer["CODITECT_KEYS_DIR"] == str(tmp_path / "keys")
    assert verifier["CODITECT_KEYS_DIR"] == str(tmp_path / "keys-public")


def test_the_gateways_own_origins_pass_the_origin_checks_unless_configured(tmp_path: Path) -> None:
    """The console is served by the gateway: its origin must be allowed (relay, cookie mode)."""
    import json

    s = StackSettings(root=ROOT, data_dir=tmp_path, port=18123)
    env = Planned(FunctionSpec("relay", kind="asgi"), tmp_path, 1).env(s, "", {})
    origins = json.loads(env["CODITECT_CORS_ORIGINS"])
    assert {"http://127.0.0.1:18123", "http://localhost:18123", "http://127.0.0.1:8080"} <= set(origins)
    assert len(origins) == len(set(origins))
    given = {"CODITECT_CORS_ORIGINS": '["https://console.example"]'}
    assert (
        Planned(FunctionSpec("x"), tmp_path, 1).env(s, "", given)["CODITECT_CORS_ORIGINS"]
        == given["CODITECT_CORS_ORIGINS"]
    )


def test_extra_functions_come_from_a_file_with_sources_beside_it(tmp_path: Path) -> None:
    extra = tmp_path / "extra.py"
    extra.write_text(
        "from coditect.registry.spec import FunctionSpec\n"
        "FUNCTIONS = (FunctionSpec('probe', kind='cloudevent', events=('x.y',)),)\n"
    )
    found = dict((spec.name, source) for spec, source in function_specs(settings(tmp_path, extra)))
    assert found["probe"] == tmp_path / "probe" / "main.py"
    assert set(found) == {spec.name for spec in registry.FUNCTIONS} | {"probe"}


def test_an_extra_function_may_not_shadow_a_registry_one(tmp_path: Path) -> None:
    extra = tmp_path / "extra.py"
    extra.write_text(
        "from coditect.registry.spec import FunctionSpec\nFUNCTIONS = (FunctionSpec('health'),)\n"
    )
    with pytest.raises(ValueError, match="declared twice: health"):
        function_specs(settings(tmp_path, extra))


def test_settings_from_the_environment(tmp_path: Path) -> None:
    s = StackSettings.from_env({"CODITECT_DATA_DIR": str(tmp_path), "CODITECT_PORT": "9000",
                                "CODITECT_HOST": "0.0.0.0"})  # fmt: skip
    assert (s.data_dir, s.port, s.host, s.broker_port, s.extra) == (tmp_path, 9000, "0.0.0.0", 0, None)
    defaults = StackSettings.from_env({})
    assert defaults.port == 8080 and defaults.host == "127.0.0.1" and defaults.data_dir.name == ".coditect"


def test_http_functions_run_as_replicas_the_relay_and_event_functions_as_one(tmp_path: Path) -> None:
    planned = {p.name: p for p in plan(settings(tmp_path))}
    for spec in registry.FUNCTIONS:
        assert len(planned[spec.name].ports) == (2 if spec.kind == "http" else 1), spec.name
    health = planned["health"]
    assert (
        health.urls == [f"http://127.0.0.1:{port}" for port in health.ports] and health.url == health.urls[0]
    )
    assert [health.process_name(i) for i in range(2)] == ["health", "health.2"]
    second = health.argv(1)
    assert second[second.index("--port") + 1] == str(health.ports[1])
    assert health.env(settings(tmp_path), "http://b/", {}, 1)["PORT"] == str(health.ports[1])
    single = StackSettings(root=ROOT, data_dir=tmp_path, replicas=1)
    assert all(len(p.ports) == 1 for p in plan(single))


def test_the_replica_count_setting(tmp_path: Path) -> None:
    assert StackSettings.from_env({}).replicas == 2
    assert StackSettings.from_env({"CODITECT_REPLICAS": "3"}).replicas == 3
    for bad in ("0", "9", "two", "-1"):
        with pytest.raises(ValueError, match="CODITECT_REPLICAS"):
            StackSettings.from_env({"CODITECT_REPLICAS": bad})
