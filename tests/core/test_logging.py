"""Log lines are JSON with the request id; secrets and tracebacks stay out of them."""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from auth_service.core.logging import JsonFormatter, configure_logging, request_id_var


def _format(msg: str, level: int = logging.ERROR, **extra: object) -> dict[str, object]:
    record = logging.makeLogRecord(
        {"msg": msg, "levelno": level, "levelname": logging.getLevelName(level), **extra}
    )
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_tracebacks_written_into_messages_are_summarised() -> None:
    try:
        raise RuntimeError("relation does not exist\n[SQL: SELECT secret FROM t]")
    except RuntimeError:
        text = traceback.format_exc()  # what uvicorn logs when startup fails
    line = _format(text)
    assert "Traceback" not in json.dumps(line)
    assert "SELECT secret" not in json.dumps(line)
    assert line["error"] == "RuntimeError: relation does not exist"


def test_sensitive_extra_fields_are_redacted() -> None:
    line = _format("login", level=logging.INFO, password="hunter2", client_secret="acs_x")
    assert line["password"] == "[redacted]"
    assert line["client_secret"] == "[redacted]"


def test_the_request_id_is_stamped_when_the_record_is_made() -> None:
    configure_logging("INFO")
    logger = logging.getLogger("auth_service.test")
    token = request_id_var.set("rid-42")
    try:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "hello", (), None)
    finally:
        request_id_var.reset(token)
    # Formatted later (another handler, after the request): the id is still the request's.
    formatted = json.loads(JsonFormatter().format(record))
    assert formatted["request_id"] == "rid-42"
    assert formatted["message"] == "hello"


def test_console_lines_are_readable_and_still_redact() -> None:
    from auth_service.core.logging import ConsoleFormatter

    record = logging.makeLogRecord(
        {"msg": "login", "levelno": logging.INFO, "levelname": "INFO", "name": "auth.x",
         "password": "hunter2", "status": 401}
    )  # fmt: skip
    line = ConsoleFormatter().format(record)
    assert " info    auth.x: login  " in line
    assert "password=[redacted]" in line
    assert "status=401" in line
    assert "hunter2" not in line


async def test_json_startup_is_one_line_with_the_summary_fields(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from auth_service.main import create_app
    from tests.conftest import make_settings

    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url="redis://:redis-Pass-1@127.0.0.1:1/0",  # not contacted at startup
        logging_level="INFO",
        log_format="json",
        token_issuer=None,
        port=8765,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            kid = app.state.oauth2.keys.ring.signing_kid
    finally:
        logging.getLogger().handlers[:] = []  # they write to this test's captured stdout
    out = capsys.readouterr().out
    (line,) = [json.loads(x) for x in out.splitlines() if '"auth_service is up"' in x]
    assert line["url"] == "http://127.0.0.1:8765"
    assert line["docs"] == "http://127.0.0.1:8765/docs"
    assert line["signing_key"] == kid
    assert line["token_issuer"] == "http://127.0.0.1:8765"
    assert line["redis"] == "redis://127.0.0.1:1/0"  # the password is not repeated
    assert "redis-Pass-1" not in out
    assert "postgres" in line["database"]
    assert line["identity_provider"].startswith("local")


def test_urls_in_the_summary_lose_their_password() -> None:
    from auth_service.startup import without_password

    assert without_password("postgresql://app:pw-9@db.example:5432/app?sslmode=require") == (
        "postgresql://app@db.example:5432/app?sslmode=require"
    )
    assert without_password("rediss://:pw-9@cache:6380/1") == "rediss://cache:6380/1"
    assert without_password("postgresql+asyncpg://postgres@/auth_service?host=/tmp/s") == (
        "postgresql+asyncpg://postgres@/auth_service?host=/tmp/s"
    )
