"""The relay's uvicorn settings come from `Settings` in one place (issue 16 item 2), with ONE
proxy-headers setting (off: the client address is coditect.http.client_ip's business)."""

from __future__ import annotations

from coditect import registry
from coditect.config import Settings
from coditect.deploy import image
from coditect.relay.server import options


def test_uvicorn_options_follow_the_settings() -> None:
    s = Settings(relay_max_message_size=2 * 1024 * 1024, relay_ping_interval=7.0)
    o = options(s)
    assert o["ws_max_size"] == 2 * 1024 * 1024 and o["ws_ping_interval"] == o["ws_ping_timeout"] == 7.0
    assert o["ws"] == "websockets-sansio" and o["ws_per_message_deflate"] is False
    assert o["proxy_headers"] is False


def test_nothing_else_configures_uvicorn() -> None:
    relay = registry.function("relay")
    assert not [name for name, _ in relay.env if name.startswith("UVICORN_")]
    assert "--proxy-headers" not in image.DOCKERFILE and "uvicorn " not in image.START_SCRIPT
    assert "python -m coditect.relay --app main:app" in image.START_SCRIPT
