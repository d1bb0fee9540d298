"""Structured logs: one JSON object per line. Callers never pass identity numbers, names or card numbers."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
        }
        message = record.getMessage()
        try:
            fields = json.loads(message) if message.startswith("{") else {"msg": message}
        except ValueError:
            fields = {"msg": message}
        entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime


def event(
    logger: logging.Logger, name: str, *, level: int = logging.INFO, exc_info: bool = False, **fields: object
) -> None:
    """One log line: {"event": name, **fields}. Every log line of the server goes through here."""
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": name, **fields}, ensure_ascii=False, default=str), exc_info=exc_info)
