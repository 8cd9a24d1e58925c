"""`koppel demo`: both sandboxes with generated data, every flow they have data for, a summary.

The demo itself (its sandboxes, its integration file, its own state) is `koppel.services.demo`;
this command shows it and, without --once, then serves the web app over it (with the flows on
their schedules in the same process) until Ctrl-C.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from koppel.commands.common import (
    ExitCode,
    console,
    friendly_errors,
    koppel_command,
    load_settings,
    opened_store,
    progress_bar,
)
from koppel.commands.running import exit_code, print_reports, progress_lines
from koppel.commands.web import run_server
from koppel.services import runs
from koppel.settings import Settings
from koppel.store import Flow, RunStatus, Store

if TYPE_CHECKING:
    from koppel.services.demo import Demo

DEMO_PRODUCTS = 500


DEMO_HOST = "127.0.0.1"


def _web_notes(demo: Demo, email: str, password: str, url: str) -> list[str]:
    pim, av = demo.document["connections"]["pim"], demo.document["connections"]["av"]
    return [
        f"Sign in at {url} as {email} with the password {password}",
        "  (an account of this demo only: the next demo starts afresh)",
        "The sandboxes keep running, and the flows run every minute:",
        f"  Parts Pim API    {pim['base_url']}",
        f"  AccountView API  {av['base_url']}",
        f"  credentials      {demo.file} (readable by you only)",
        "  each sandbox shows the requests it served at /_admin/requests",
        "Stop with Ctrl-C.",
    ]


async def _demo(store: Store, settings: Settings, flows: list[Flow]) -> ExitCode:
    """Run every flow once and print the summary."""
    await runs.check_flows_can_run(store, flows)
    async with runs.started_runner(store, settings) as runner:
        with progress_lines() as progress:
            reports = await runs.run_flows(runner, store, flows, progress=progress)
    print_reports(reports, "demo: Parts Pim -> AccountView")
    code = exit_code(reports)
    if code is ExitCode.FAILED and all(r.status != RunStatus.FAILED for r in reports):
        code = ExitCode.OK  # records that failed are part of the show, not a broken demo
    return code


@friendly_errors
def demo(
    products: Annotated[
        int, typer.Option(min=1, help="how many products Parts Pim gets")
    ] = DEMO_PRODUCTS,
    once: Annotated[
        bool, typer.Option("--once", help="run every flow once, then exit (no web app)")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed for the generated data")] = 0,
    port: Annotated[int, typer.Option(help="port of the web app on 127.0.0.1")] = 8000,
) -> None:
    """Both sandboxes in this process with generated data, and every flow run for real; then,
    without --once, the web app over the demo (its address and a login are printed) until
    Ctrl-C.

    Exit code 0 when every run completed (records that failed are listed in the summary),
    1 when a run failed.
    """
    home: Path = load_settings().home
    # Imported here: it loads the sandboxes, which no other command needs.
    from koppel.services.demo import DEMO_LOGIN, apply_demo, demo_admin, set_up_demo

    with ExitStack() as stack:
        with progress_bar() as bar:
            tasks: dict[str, Any] = {}

            def generated(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(f"generating {name} data", total=total)
                bar.update(tasks[name], completed=done, total=total)

            set_up = stack.enter_context(set_up_demo(home, products, seed=seed, progress=generated))
        console.print(f"integration file: {set_up.file}", markup=False)
        with opened_store(set_up.settings) as store:
            flows = apply_demo(store, set_up)
            code = asyncio.run(_demo(store, set_up.settings, flows))
            if once or code is not ExitCode.OK:
                console.print(
                    f"look around: KOPPEL_HOME={set_up.settings.home} {koppel_command()} runs",
                    markup=False,
                )
                if once and code is ExitCode.OK:
                    console.print(
                        f"or in the web app: {koppel_command()} demo",
                        markup=False,
                    )
                raise typer.Exit(int(code))
            _, password = demo_admin(store, set_up)
            url = f"http://{DEMO_HOST}:{port}"
            notes = _web_notes(set_up, DEMO_LOGIN, password, url)
            run_server(
                set_up.settings,
                store,
                host=DEMO_HOST,
                port=port,
                worker=True,
                notes=notes,
                access_log=False,
            )
    console.print("demo stopped")


__all__ = ["DEMO_PRODUCTS", "demo"]
