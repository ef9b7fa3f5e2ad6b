"""Relay logging: coditect's JSON lines, with no query string (a ticket may be in it) anywhere.

uvicorn logs request lines itself ("GET /workspaces/…?ticket=… 200", "WebSocket … [accepted]").
Its loggers are routed to the root JSON handler, whose filter cuts every `?…` from string
arguments before formatting; `coditect.http.logs.redact` then masks `ticket=` as a second line.
"""

from __future__ import annotations

import logging
import re

from coditect.http import logs

_QUERY = re.compile(r"\?[^\s\"']*")


class NoQueryString(logging.Filter):
    """Remove query strings from a record's message and arguments (never drops the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = _QUERY.sub("", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_QUERY.sub("", a) if isinstance(a, str) else a for a in record.args)
        return True


def configure(level: str = "INFO") -> None:
    """Install the JSON handler (idempotent) and route uvicorn's loggers through it."""
    logs.configure("relay", level)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, NoQueryString) for f in handler.filters):
            handler.addFilter(NoQueryString())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
