"""The relay: HTTP and WebSocket traffic to `/workspaces/{id}/{rest}` (api-v5.md, "relay").

An ASGI target (`app`), not a functions-framework one: run by uvicorn (`uvicorn main:app`, with
the UVICORN_* environment of coditect.registry.relay) or `python -m coditect.relay`. Everything
lives in coditect.relay.
"""

from coditect.config import get_settings
from coditect.relay import logs
from coditect.relay.app import create_app

logs.configure(get_settings().log_level)
app = create_app()
