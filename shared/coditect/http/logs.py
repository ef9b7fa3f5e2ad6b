"""Structured JSON logs: one line per event, secrets never written.

Code logs fields, not request dumps: no header, body or raw query string is ever logged. As a
last line of defence the formatter also masks anything shaped like a bearer token, a JWT, or a
`ticket=` / `token=` parameter.

`request_line` is the runtime's per-request line: the same JSON as `JsonFormatter`, written
straight to the process handler when that handler is the only one a record would reach (the
production setup), and through `logging` otherwise (tests attach capture handlers).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

_SECRETISH = re.compile(
    r"(Bearer\s+)\S+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*|((?:ticket|token|password)=)[^&\s\"]+",
    re.IGNORECASE,
)
_ENCODER = json.JSONEncoder(default=str)  # json.dumps(…, default=str), built once
_handler: logging.StreamHandler[Any] | None = None  # the handler `configure` installed
_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def redact(text: str) -> str:
    # Every alternative of _SECRETISH needs "bearer", "eyj" (case-insensitively) or "=": a
    # plain string test skips the regex scan for the usual ids, names and numbers.
    lowered = text.lower()
    if "=" not in text and "bearer" not in lowered and "eyj" not in lowered:
        return text
    return _SECRETISH.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


def _timestamp(created: float) -> str:
    # strftime once per second, not once per line (one tuple: threads see a consistent pair).
    global _second
    second = int(created)
    cached, text = _second
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{int((created - second) * 1000):03d}Z"


def _line(function: str, created: float, level: str, logger: str, msg: str, fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ts": _timestamp(created),
        "level": level,
        "function": function,
        "logger": logger,
        "msg": redact(msg),
    }
    if isinstance(fields, dict):
        entry.update({k: redact(v) if isinstance(v, str) else v for k, v in fields.items()})
    return entry


class RedactingFormatter(logging.Formatter):
    """A plain-text formatter that masks secrets like `JsonFormatter` does: for every log file
    that is not JSON (the local stack's gateway, broker and scheduler logs, uvicorn's access
    lines — `GET /workspaces/…?ticket=…` — included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, function: str) -> None:
        super().__init__()
        self.function = function

    def format(self, record: logging.LogRecord) -> str:
        entry = _line(
            self.function, record.created, record.levelname.lower(), record.name, record.getMessage(),
            getattr(record, "fields", None),
        )  # fmt: skip
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return _ENCODER.encode(entry)


def _only_our_handler(logger: logging.Logger) -> bool:
    """True when a record of `logger` would reach exactly the handler `configure` installed."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return current.parent is None and len(current.handlers) == 1 and current.handlers[0] is _handler
        if not current.propagate:
            return False
        current = current.parent
    return False


def request_line(logger: logging.Logger, fields: dict[str, Any]) -> None:
    """Log "request" with `fields` at INFO: the line `logger.info("request", extra=…)` would write,
    without building a LogRecord when nothing but our own handler is listening."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _handler
    if handler is None or logger.filters or handler.filters or not _only_our_handler(logger):
        logger.info("request", extra={"fields": fields})
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    text = _ENCODER.encode(_line(formatter.function, time.time(), "info", logger.name, "request", fields))
    text += handler.terminator
    fd = _fd_of(handler.stream)
    try:
        if fd is None:
            with handler.lock:  # type: ignore[union-attr]
                handler.stream.write(text)
                handler.flush()
            return
        # One write(2) of the whole line, no lock: a line up to PIPE_BUF (4 KiB) lands whole in a
        # pipe and any line whole in an O_APPEND file. Holding the handler's lock across the
        # system call (which releases the GIL) made every other request thread queue on that
        # lock behind it: a measured 10-15% of the health function's requests/s.
        data = text.encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(fd, data) :]
    except Exception:  # noqa: BLE001 — logging must never fail a request
        handler.handleError(logging.makeLogRecord({"msg": "request"}))  # as Handler.emit does


_fd_cache: tuple[object, int | None] = (None, None)


def _fd_of(stream: Any) -> int | None:
    """The file descriptor under `stream` when it is a real file whose Python buffer is always
    flushed (a StreamHandler flushes after each record), else None (StringIO, pytest's capsys)."""
    global _fd_cache
    cached_stream, fd = _fd_cache
    if cached_stream is stream:
        return fd
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    _fd_cache = (stream, fd)
    return fd


def configure(function: str, level: str = "INFO") -> None:
    """Route every logger of the process to one JSON line per record on stderr (idempotent)."""
    global _handler
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(function))
    root.handlers = [handler]
    root.setLevel(level)
    _handler = handler
