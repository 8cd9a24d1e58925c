"""`koppel user create`: an account for the web app, e.g. the first admin of a workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from koppel.accounts.users import check_password, create_user, normalise_email
from koppel.commands.common import console, fail, friendly_errors, load_settings, opened_store
from koppel.store import Role

user_app = typer.Typer(no_args_is_help=True, help="Accounts of the web app.")


@user_app.command("create")
@friendly_errors
def create(
    email: Annotated[str, typer.Option(help="the address the user signs in with")],
    workspace: Annotated[
        str, typer.Option(help="the workspace (tenant) the user belongs to; made if new")
    ],
    name: Annotated[str, typer.Option(help="the name shown in the app")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="an admin, not a viewer")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Make a user of the web app. The password is asked for (twice), never taken as an option."""
    if password_stdin:
        password = typer.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        fail("no password given; type one at the prompt or pass it on stdin (--password-stdin)")
    check_password(password, email=normalise_email(email))
    settings = load_settings()
    with opened_store(settings) as store:
        tenant = store.tenants.ensure(workspace.strip())
        user = create_user(
            store,
            actor="cli",
            tenant_id=tenant.id,
            email=email,
            name=name,
            password=password,
            role=Role.ADMIN if admin else Role.VIEWER,
        )
    console.print(
        f"{user.role.value} {user.email} created in workspace {tenant.name}; "
        "they sign in at the web app (koppel serve)",
        markup=False,
    )


__all__ = ["user_app"]
