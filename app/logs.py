"""LOG_FORMAT: text (uvicorn's own, as always) or json (one JSON object a line, for a log
collector; with one line per /graphql request, app.observe)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

from app.config import Settings

# uvicorn's own level below debug.
TRACE = 5


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def uvicorn_log_config(settings: Settings) -> dict | None:
    """uvicorn's log_config: None keeps its default (text); json sends every logger, uvicorn's and
    the app's, through JsonFormatter to stderr."""
    if settings.log_format != "json":
        return None
    level = TRACE if settings.log_level == "trace" else settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {name: {"propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
