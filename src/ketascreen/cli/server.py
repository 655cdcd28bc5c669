"""Commands of the `ketascreen` CLI for the server and its database: ``serve``, ``db upgrade``,
``users``, ``tokens`` and ``audit verify`` (registered on the main app by ``register``).

Every command that touches the database takes ``--database-url`` (else
``KETASCREEN_DATABASE_URL``, else SQLite in ``./data``). Heavy libraries are imported inside the
commands, so the CLI's cold start stays short. The web application is a separate front end: the
``serve`` command loads it by name (as ``uvicorn module:factory`` would), keeping the two
independent.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ketascreen.storage import Database

DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", help="Database URL (sqlite:///PATH or postgresql://USER@HOST/DB). "
    "Default: $KETASCREEN_DATABASE_URL, else SQLite in ./data.", show_default=False)]


class Role(StrEnum):
    admin = "admin"
    clinician = "clinician"
    viewer = "viewer"


def _err(message: str) -> None:
    typer.echo(f"ketascreen: {message}", err=True)


@contextmanager
def _database(url_flag: str | None, *, upgrade: bool = True) -> Iterator[Database]:
    """The database, migrated, with every storage failure turned into one line and exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from ketascreen.storage import Database, StorageError, database_url_from, redact_url

    url = database_url_from(url_flag)
    db = None
    try:
        db = Database(url)
        if upgrade:
            db.upgrade()
        yield db
    except StorageError as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        _err(f"cannot use the database at {redact_url(url)}: {_first_line(exc)}")
        raise typer.Exit(1) from None
    finally:
        if db is not None:
            db.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cli_actor() -> Any:
    import getpass

    from ketascreen.storage import Actor

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(f"cli:{who}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)
    users_app = typer.Typer(help="Clinician workspace accounts.", no_args_is_help=True)
    tokens_app = typer.Typer(help="REST API tokens.", no_args_is_help=True)
    audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(audit_app, name="audit")

    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(
            help="Address to listen on. Default: $KETASCREEN_HOST or 127.0.0.1.",
            show_default=False)] = None,
        port: Annotated[int | None, typer.Option(
            help="Port. Default: $KETASCREEN_PORT or 8000.", show_default=False)] = None,
        database_url: DatabaseUrl = None,
        workers: Annotated[int, typer.Option(min=1, max=64,
                                             help="Worker processes.")] = 1,
    ) -> None:
        """Run the web application: patient self-screening, clinician workspace and REST API."""
        import logging
        import os

        import uvicorn

        from ketascreen.storage import Users, redact_url

        settings_mod = importlib.import_module("ketascreen.web.settings")
        settings = settings_mod.WebSettings.from_env(host=host, port=port,
                                                     database_url=database_url)
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        with _database(settings.database_url, upgrade=settings.migrate_on_start) as db, \
                db.read() as s:
            accounts = Users(s).count()
        typer.echo(f"ketascreen is starting at {settings.base_url}/")
        typer.echo(f"  database: {redact_url(settings.database_url)}")
        typer.echo(f"  patients start at {settings.base_url}/ ; clinicians log in at "
                   f"{settings.base_url}/login ; API docs at {settings.base_url}/api/v1/docs")
        if accounts == 0:
            typer.echo("  no accounts yet: create the first administrator in another terminal "
                       "with\n    ketascreen users create --email you@example.org --role admin")
        if settings.secret_source == "generated":
            typer.echo(f"  development mode: the secret key is kept in {settings.data_dir}")
        typer.echo("  press Ctrl+C to stop")
        common: dict[str, Any] = {"host": settings.host, "port": settings.port,
                                  "access_log": False, "server_header": False,
                                  "log_level": "info"}
        if workers == 1:
            app_mod = importlib.import_module("ketascreen.web.app")
            uvicorn.run(app_mod.create_app(settings.model_copy(update={
                "migrate_on_start": False})), **common)
            return
        # Several processes: each builds the app from the environment (flags passed through it).
        os.environ["KETASCREEN_DATABASE_URL"] = settings.database_url
        os.environ["KETASCREEN_HOST"] = settings.host
        os.environ["KETASCREEN_PORT"] = str(settings.port)
        os.environ["KETASCREEN_SECRET_KEY"] = settings.secret_key
        os.environ["KETASCREEN_MIGRATE_ON_START"] = "false"
        _run_workers(uvicorn.Config("ketascreen.web.app:app_from_env", factory=True,
                                    workers=workers, **common), settings.host, settings.port)

    @db_app.command("upgrade")
    def db_upgrade(database_url: DatabaseUrl = None) -> None:
        """Apply the database migrations (the server also applies them when it starts)."""
        with _database(database_url) as db:
            typer.echo(f"database {db.display_url} is at revision {db.current_revision()} "
                       "(the newest)")

    @users_app.command("create")
    def users_create(
        email: Annotated[str, typer.Option(help="The account's e-mail address.")],
        role: Annotated[Role, typer.Option(help="admin, clinician or viewer.")],
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="Read the password from standard input (one line).")
        ] = False,
        database_url: DatabaseUrl = None,
    ) -> None:
        """Create an account (asks for its password, or reads it with --password-stdin)."""
        from ketascreen.storage import Conflict, Users
        from ketascreen.storage.credentials import MIN_PASSWORD_LENGTH

        password = _read_password(password_stdin, MIN_PASSWORD_LENGTH)
        with _database(database_url) as db:
            try:
                with db.write() as s:
                    user = Users(s).create(email, role.value, password, actor=_cli_actor())
            except (Conflict, ValueError) as exc:
                _err(str(exc))
                raise typer.Exit(2) from None
        typer.echo(f"created {user.role} account {user.email}")

    @users_app.command("list")
    def users_list(database_url: DatabaseUrl = None) -> None:
        """List the accounts."""
        from ketascreen.storage import Users

        with _database(database_url) as db, db.read() as s:
            for u in Users(s).all():
                state = "switched off" if u.disabled else "active"
                typer.echo(f"{u.email}\t{u.role}\t{state}\tcreated {u.created_at:%Y-%m-%d}")

    @users_app.command("set-password")
    def users_set_password(
        email: Annotated[str, typer.Option(help="The account's e-mail address.")],
        password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
        database_url: DatabaseUrl = None,
    ) -> None:
        """Set a new password (this also unlocks a locked account)."""
        from ketascreen.storage import NotFound, Users
        from ketascreen.storage.credentials import MIN_PASSWORD_LENGTH

        password = _read_password(password_stdin, MIN_PASSWORD_LENGTH)
        with _database(database_url) as db:
            try:
                with db.write() as s:
                    Users(s).set_password(email, password, actor=_cli_actor())
            except (NotFound, ValueError) as exc:
                _err(str(exc))
                raise typer.Exit(2) from None
        typer.echo(f"password set for {email.strip().lower()}")

    @tokens_app.command("create")
    def tokens_create(
        email: Annotated[str, typer.Option(help="The account the token acts as.")],
        database_url: DatabaseUrl = None,
    ) -> None:
        """Create an API token for an account and print it (once: only a digest is kept)."""
        from ketascreen.storage import Tokens, Users

        with _database(database_url) as db, db.write() as s:
            user = Users(s).by_email(email)
            if user is None or user.disabled:
                _err(f"no active account for {email.strip().lower()} (create it with "
                     "`ketascreen users create`)")
                raise typer.Exit(2)
            token, _record = Tokens(s).create(user, actor=_cli_actor())
        typer.echo(token)
        typer.echo(f"API token for {user.email} ({user.role}); it is shown only once. Send it as "
                   "`Authorization: Bearer <token>`.", err=True)

    @tokens_app.command("revoke")
    def tokens_revoke(
        email: Annotated[str, typer.Option(help="Revoke every token of this account.")],
        database_url: DatabaseUrl = None,
    ) -> None:
        """Revoke every API token of an account."""
        from ketascreen.storage import Tokens, Users

        with _database(database_url) as db, db.write() as s:
            user = Users(s).by_email(email)
            if user is None:
                _err(f"no account for {email.strip().lower()}")
                raise typer.Exit(2)
            n = Tokens(s).revoke_all(user, actor=_cli_actor())
        typer.echo(f"revoked {n} token(s) of {user.email}")

    @audit_app.command("verify")
    def audit_verify(database_url: DatabaseUrl = None) -> None:
        """Check the audit chain and every stored screening and review against it.

        Exit status 0 when everything checks out, 1 when anything was changed, inserted or
        removed after the fact (each problem is listed)."""
        from ketascreen.storage import verify

        with _database(database_url) as db, db.read() as s:
            report = verify(s)
        if report.ok:
            typer.echo(f"audit log OK: {report.entries} entries, {report.screenings} screenings, "
                       f"{report.reviews} reviews; head {report.head_hash}")
            return
        for problem in report.problems:
            typer.echo(problem)
        _err(f"the audit log found {len(report.problems)} problem(s): the records were changed "
             "after they were written")
        raise typer.Exit(1)


def _run_workers(config: Any, host: str, port: int) -> None:
    """uvicorn's worker processes on a listening socket made here, with its protocol set: a
    socket made with protocol 0 (as uvicorn's own) reaches the workers without TCP_NODELAY, and
    Nagle's algorithm then stalls each keep-alive response for 40 ms."""
    import socket

    from uvicorn.supervisors import Multiprocess

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        _err(f"cannot listen on {host}:{port}: {exc.strerror}")
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()


def _read_password(from_stdin: bool, minimum: int) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < minimum:
        _err(f"a password needs at least {minimum} characters")
        raise typer.Exit(2)
    return password
