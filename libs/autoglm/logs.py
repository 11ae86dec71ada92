"""Structured (JSON-lines) logging; every record carries the service, request id and trace id."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from autoglm.tracing import current_trace_id

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
service_var: ContextVar[str] = ContextVar("service", default="")

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "service": service_var.get(),
            "request_id": request_id_var.get(),
            "trace_id": current_trace_id(),
        }
        payload.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        )
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    service_var.set(service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about group joins; keep the signal.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
