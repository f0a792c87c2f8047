"""``fm auth ...``: signing-key rotation and account bootstrap for a server's operator.

These act on the auth store (``FM_AUTH_STORE``, else the default store)
whether or not ``FM_AUTH`` is set, so an operator can prepare a server
before switching authentication on.
"""
from __future__ import annotations

from typing import Any


def add_auth_commands(app: Any) -> None:
    import typer

    from flowmason.kernel.errors import require_extra
    from flowmason.kernel.storage import open_store

    from .service import AuthService
    from .settings import AuthSettings

    auth_app = typer.Typer(help="Users and signing keys of the HTTP API (FM_AUTH=1).", no_args_is_help=True)
    app.add_typer(auth_app, name="auth")

    def service(store_url: str | None, what: str) -> AuthService:
        settings = AuthSettings.from_env()
        # PyJWT with cryptography signs tokens; bcrypt hashes passwords (HS256 keys need no cryptography)
        modules = ("jwt", "bcrypt") if settings.algorithm == "HS256" else ("jwt", "cryptography", "bcrypt")
        require_extra(modules, "auth", f"`fm auth {what}`")
        return AuthService(settings, open_store(store_url or settings.store_url))

    store_opt = typer.Option(None, "--store", help="Store URL (default: FM_AUTH_STORE, FM_STORE or the data folder).")

    @auth_app.command("rotate-keys")
    def rotate_keys(store: str = store_opt) -> None:
        """Start signing tokens with a new key; older keys keep verifying until their tokens expire."""
        key = service(store, "rotate-keys").keys.rotate()
        typer.echo(f"new signing key {key.kid} ({key.alg}); previous keys now only verify")

    @auth_app.command("keys")
    def keys(store: str = store_opt, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List signing key ids (never the key material)."""
        import json

        ring = service(store, "keys").keys
        rows = []
        for kid in ring.kids():
            key = ring.verifying_key(kid)
            rows.append({"kid": kid, "alg": key.alg if key else None,
                         "state": "retired" if key and key.retired_at else "signing"})
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        elif not rows:
            typer.echo("no signing keys yet: the server makes one on its first login, or run `fm auth rotate-keys`",
                       err=True)
        for row in [] if as_json else rows:
            typer.echo(f"{row['kid']}  {row['alg'] or '?'}  {row['state']}")

    @auth_app.command("create-user")
    def create_user(
        email: str = typer.Argument(..., help="The new user's email."),
        org_name: str = typer.Option(None, "--org", help="Name of the organization they will own."),
        store: str = store_opt,
    ) -> None:
        """Create a user and their organization; the password is asked for, never passed as an argument."""
        from flowmason.kernel.errors import ExitCode, FlowMasonError

        svc = service(store, "create-user")  # a missing extra is said before the password is asked for
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            made = svc.register(email, password, org_name)
        except FlowMasonError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(ExitCode.USAGE) from None  # a refused email or password: the input
        typer.echo(f"user {made['user_id']} owns organization {made['org_id']}")
