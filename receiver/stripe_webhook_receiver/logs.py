"""Structured logs: one JSON object per line on stderr.

Callers pass fields with `extra={"fields": {...}}`; nothing in this project passes a secret,
an API key or a payload there, and exception text is limited to the exception's class for
errors raised by third-party code that could quote its input.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "stripe_webhook_receiver"


class JsonFormatter(logging.Formatter):
    """Format a record as `{"time", "level", "logger", "message", ...fields}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    """Send every logger's records (ours, uvicorn's) as JSON lines to stderr at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get(name: str) -> logging.Logger:
    """Return the receiver's logger for a module."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
