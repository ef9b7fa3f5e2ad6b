"""The relay: the only way into a workspace. A Starlette/ASGI app run by uvicorn.

`/workspaces/{id}/{rest}` (HTTP and WebSocket) is forwarded to `/{rest}` of that workspace, whose
address comes only from server state (the grant the store returns), never from the request.

    app.py          create_app(): routing, /healthz, /metrics, lifespan (starts the watcher)
    grants.py       GrantSource: what the relay asks the store (tickets, cookies, revocation)
    auth.py         Origin allowlist, credential extraction, the 401/403 decision
    headers.py      what is forwarded: credentials stripped, Host/X-Forwarded-* set by us
    httpproxy.py    streaming HTTP proxy (httpx, one pool per workspace)
    wsproxy.py      WebSocket proxy with size limit, backpressure and close-code propagation
    limits.py       per-user connection cap, the registry of live connections
    revocation.py   one background task: re-checks live grants, closes revoked ones (4401)
    logs.py         log setup that never writes a query string or a ticket
    __main__.py     `python -m coditect.relay`: uvicorn with the tuned server settings

Decisions (the contract leaves them to us) are documented in auth.py and docs/relay.md.
"""
