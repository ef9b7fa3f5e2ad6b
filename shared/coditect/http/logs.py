"""Structured JSON logs: one line per event, secrets never written.

Code logs fields, not request dumps: no header, body or raw query string is ever logged. As a
last line of defence the formatter also masks anything shaped like a bearer token, a JWT, or a
`ticket=` / `token=` parameter.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_SECRETISH = re.compile(
    r"(Bearer\s+)\S+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*|((?:ticket|token|password)=)[^&\s\"]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _SECRETISH.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, function: str) -> None:
        super().__init__()
        self.function = function

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "function": self.function,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: redact(v) if isinstance(v, str) else v for k, v in fields.items()})
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure(function: str, level: str = "INFO") -> None:
    """Route every logger of the process to one JSON line per record on stderr (idempotent)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(function))
    root.handlers = [handler]
    root.setLevel(level)
