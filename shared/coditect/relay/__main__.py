"""`python -m coditect.relay [--host H] [--port P]`: the relay under uvicorn, tuned.

The server-side WebSocket settings that only uvicorn can apply are set here from the relay's
settings (the Knative Service and the local stack pass the same values as UVICORN_* variables,
see coditect.registry.relay): frames above the message limit are refused while being read,
permessage-deflate is off (CPU over bandwidth; no compression of frames carrying secrets), and
the client side is pinged like the workspace side.
"""

from __future__ import annotations

import argparse

from coditect.config import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Coditect relay")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container listens on all interfaces
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    import uvicorn

    from coditect.relay import logs
    from coditect.relay.app import create_app

    settings = get_settings()
    logs.configure(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=settings.relay_max_message_size,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.relay_ping_interval,
        ws_ping_timeout=settings.relay_ping_interval,
        proxy_headers=False,  # X-Forwarded-For is interpreted by the relay (trusted_proxy_hops)
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
