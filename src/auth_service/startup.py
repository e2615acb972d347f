"""The startup summary: where the service listens and what it runs on, said once."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI

from auth_service.config import LogFormat, Settings, served_base_url
from auth_service.identity.summary import describe_identity_provider

logger = logging.getLogger("auth_service.startup")


def without_password(url: str) -> str:
    """The URL with any password removed (the user name stays: it helps, and is no secret)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}"))


def describe_database(settings: Settings, embedded_data_dir: Path | None) -> str:
    """The embedded server's data directory, or the URL without its password."""
    if embedded_data_dir is not None:
        return f"embedded PostgreSQL at {embedded_data_dir}"
    if not settings.auth_service_database_url:
        return "not configured"
    return without_password(settings.auth_service_database_url)


def describe_redis(settings: Settings) -> str:
    if not settings.redis_url:
        return "none: denylists and rate limits in-process (one replica only)"
    return without_password(settings.redis_url)


def startup_summary(app: FastAPI) -> dict[str, str]:
    settings: Settings = app.state.settings
    url = f"{served_base_url(settings.host, settings.port)}{settings.root_path}"
    return {
        "url": url,
        "docs": f"{url}/docs",
        "database": describe_database(settings, getattr(app.state, "embedded_data_dir", None)),
        "redis": describe_redis(settings),
        "identity_provider": describe_identity_provider(settings),
        "token_issuer": settings.issuer,
        "signing_key": app.state.oauth2.keys.ring.signing_kid,
        "environment": settings.environment.value,
    }


def announce(app: FastAPI) -> None:
    """One readable block on a console, one structured line in JSON logs."""
    summary = startup_summary(app)
    if app.state.settings.effective_log_format is LogFormat.CONSOLE:
        width = max(len(key) for key in summary) + 2
        lines = [f"  {key.replace('_', ' '):<{width}}{value}" for key, value in summary.items()]
        logger.info("auth_service is up\n%s", "\n".join(lines))
    else:
        logger.info("auth_service is up", extra=summary)
