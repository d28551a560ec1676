"""`python -m auth_service [serve|create-admin|create-service-principal|rotate-keys]`."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys

from pydantic import SecretStr

from payments_common import processes
from payments_common.config import AuthSettings, load_settings
from payments_common.errors import AlreadyExists, InvalidArgument
from payments_common.server import serve_until_signalled

DEV_ROLE = "payments_auth_svc"  # created by the migrations; assumed by `make run`'s auth service


def _settings(dev_database: bool = False) -> AuthSettings:
    """The settings; with `dev_database` (the admin commands), DATABASE_URL unset means `make run`'s."""
    settings = load_settings(AuthSettings)
    if settings.database_url is None and dev_database:
        from payments_common import embedded

        url = embedded.dev_database_url()
        if url is not None:
            print(f"using the local dev database in {embedded.dev_data_dir()}", file=sys.stderr)
            # the role `make run` gives the auth service, so a command needs no more than it has
            role = settings.database_role or DEV_ROLE
            return settings.model_copy(update={"database_url": SecretStr(url), "database_role": role})
    if settings.database_url is None:
        print(
            "configuration error: DATABASE_URL: required (for a local run use `make run`, "
            "which starts the embedded PostgreSQL)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return settings


def _serve(settings: AuthSettings, _args: argparse.Namespace) -> int:
    from auth_service.app import start

    # PROCESSES workers share the port; each configures its logs and starts its own server
    return processes.run(
        settings,
        "auth_service",
        lambda own: serve_until_signalled(start(own)),
        port_field="auth_port",
        metrics_field="auth_metrics_port",
    )


def _create_admin(settings: AuthSettings, args: argparse.Namespace) -> int:
    from auth_service.app import build_service

    password = os.environ.get("ADMIN_PASSWORD") or (
        getpass.getpass("admin password: ") if sys.stdin.isatty() else secrets.token_urlsafe(18)
    )
    service, _keys, database = build_service(settings)
    try:
        user = service.register(args.email, password, args.full_name, roles=("user", "admin"))
    except (AlreadyExists, InvalidArgument) as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(f"created admin {user.email} ({user.id})")
    if "ADMIN_PASSWORD" not in os.environ and not sys.stdin.isatty():
        print(f"password (shown once): {password}")
    return 0


def _create_service_principal(settings: AuthSettings, args: argparse.Namespace) -> int:
    from auth_service.app import build_service

    service, _keys, database = build_service(settings)
    try:
        client_id, secret = service.create_service_principal(args.name, args.scope)
    finally:
        database.dispose()
    print(f"client_id: {client_id}\nclient_secret (shown once): {secret}")
    return 0


def _rotate_keys(settings: AuthSettings, _args: argparse.Namespace) -> int:
    from auth_service import keys
    from auth_service.app import build_service

    if settings.algorithm == "HS256":
        print("error: ALGORITHM=HS256 uses SECRET_KEY; rotate it in the environment instead", file=sys.stderr)
        return 1
    _service, _ring, database = build_service(settings)
    try:
        kid = keys.rotate(database, settings.algorithm)
    finally:
        database.dispose()
    print(f"new signing key {kid}; earlier keys keep verifying until their tokens expire")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m auth_service", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC server (default)")
    admin = commands.add_parser("create-admin", help="create an admin user (password from ADMIN_PASSWORD)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--full-name", default="Administrator")
    sp = commands.add_parser(
        "create-service-principal", help="create a service principal; prints its secret once"
    )
    sp.add_argument("--name", required=True)
    sp.add_argument("--scope", action="append", default=[], help="a scope to grant (repeatable)")
    commands.add_parser("rotate-keys", help="start signing with a new key")
    args = parser.parse_args(argv)
    handlers = {
        None: _serve,
        "serve": _serve,
        "create-admin": _create_admin,
        "create-service-principal": _create_service_principal,
        "rotate-keys": _rotate_keys,
    }
    return handlers[args.command](_settings(dev_database=args.command not in (None, "serve")), args)


if __name__ == "__main__":
    sys.exit(main())
