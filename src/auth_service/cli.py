"""`auth-service`: operator commands."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

from auth_service.clients import cli as clients_cli
from auth_service.config import Settings
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


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from auth_service.core.embedded_pg import embedded_postgres
    from auth_service.main import create_app

    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets
    # the `with` below stop the embedded PostgreSQL instead of dying with it still running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = Settings()
    with contextlib.ExitStack() as stack:
        if not settings.auth_service_database_url:
            url = stack.enter_context(embedded_postgres(Path(settings.embedded_postgres_data_dir)))
            os.environ["AUTH_SERVICE_DATABASE_URL"] = url
            settings = Settings()
        if not args.no_migrate:
            migrate(settings.auth_service_database_url)
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=args.host or settings.host,
            port=args.port or settings.port,
            # The server sets scope["root_path"] (FastAPI's own root_path argument is deprecated).
            root_path=settings.root_path,
            log_config=None,
            proxy_headers=settings.trust_forwarded_for,
            server_header=False,
        )
        uvicorn.Server(config).run()
    return 0


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

    for module in (clients_cli, oauth2_cli, rbac_cli):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # settings validation: one clear message, no traceback
        print(f"auth-service: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
