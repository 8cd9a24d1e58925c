"""`koppel demo`: both sandboxes with generated data, every flow they have data for, a summary.

The demo keeps its own state in `KOPPEL_HOME/demo/` (SQLite, started afresh each time: its
sandboxes are new each time, so links to the last demo's records would point nowhere) and never
touches the store of real integrations. Its integration file is `KOPPEL_HOME/demo.yaml`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from koppel.commands.common import (
    ExitCode,
    console,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
    progress_bar,
)
from koppel.commands.running import (
    check_flows_can_run,
    exit_code,
    print_reports,
    run_flows,
    serve,
    started_runner,
)
from koppel.config import apply_config, load_config
from koppel.settings import Settings
from koppel.store import Flow, RunStatus, Store

DEMO_PRODUCTS = 500
DEMO_FILE = "demo.yaml"
DEMO_STATE = "demo"


@contextmanager
def _only_demo(home: Path) -> Iterator[None]:
    """Held while a demo runs, so a second demo does not wipe the first one's state."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "demo.lock").open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fail(
                f"another koppel demo is running with KOPPEL_HOME={home}; stop it first",
                ExitCode.BUSY,
            )
        yield


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds the sandboxes' credentials)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    path.chmod(0o600)


def _connect_hint(document: dict[str, Any], file: Path, state: Path) -> str:
    pim, av = document["connections"]["pim"], document["connections"]["av"]
    return "\n".join(
        [
            "The sandboxes keep running, and a worker runs every flow every minute:",
            f"  Parts Pim API    {pim['base_url']}",
            f"  AccountView API  {av['base_url']}",
            f"  credentials      {file} (readable by you only)",
            "  each sandbox shows the requests it served at /_admin/requests",
            f"In another terminal: KOPPEL_HOME={state} koppel runs",
            "Stop with Ctrl-C.",
        ]
    )


async def _demo(
    store: Store, settings: Settings, flows: list[Flow], once: bool, hint: str
) -> ExitCode:
    await check_flows_can_run(store, flows)
    async with started_runner(store, settings) as runner:
        reports = await run_flows(runner, store, flows)
        print_reports(reports, "demo: Parts Pim -> AccountView")
        code = exit_code(reports)
        if code is ExitCode.FAILED and all(r.status != RunStatus.FAILED for r in reports):
            code = ExitCode.OK  # records that failed are part of the show, not a broken demo
        if once or code is ExitCode.INTERRUPTED:
            console.print(f"look around: KOPPEL_HOME={settings.home} koppel runs", markup=False)
            return code
        console.print(hint, markup=False)
        await serve(runner, store)
    return ExitCode.OK


@friendly_errors
def demo(
    products: Annotated[
        int, typer.Option(min=1, help="how many products Parts Pim gets")
    ] = DEMO_PRODUCTS,
    once: Annotated[bool, typer.Option("--once", help="run every flow once, then exit")] = False,
    seed: Annotated[int, typer.Option(help="seed for the generated data")] = 0,
) -> None:
    """Both sandboxes in this process with generated data, and every flow run for real.

    Exit code 0 when every run completed (records that failed are listed in the summary),
    1 when a run failed.
    """
    home = load_settings().home
    state = home / DEMO_STATE
    settings = Settings(home=state, database_url=None, engine_database_url=None, secret_key=None)
    file = home / DEMO_FILE
    from koppel.demo import (
        DEMO_ACCOUNTVIEW_ARTICLES,
        DEMO_SETTINGS,
        SHIPPING_ARTICLE,
        demo_flows,
        running_sandboxes,
    )

    with _only_demo(home), ExitStack() as stack:
        shutil.rmtree(state, ignore_errors=True)
        with progress_bar() as bar:
            tasks: dict[str, Any] = {}

            def generated(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(f"generating {name} data", total=total)
                bar.update(tasks[name], completed=done, total=total)

            sandboxes = stack.enter_context(
                running_sandboxes(
                    products,
                    seed=seed,
                    progress=generated,
                    accountview_articles=DEMO_ACCOUNTVIEW_ARTICLES,
                )
            )
        sandboxes.accountview.write("ARTICLE", [SHIPPING_ARTICLE])
        document = sandboxes.integration(demo_flows(), settings=DEMO_SETTINGS)
        _write_private(file, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
        console.print(f"integration file: {file}", markup=False)
        with opened_store(settings) as store:
            integration = apply_config(store, load_config(file), actor="demo")
            flows = store.flows.list(integration.id)
            hint = _connect_hint(document, file, state)
            code = asyncio.run(_demo(store, settings, flows, once, hint))
    if not once and code is ExitCode.OK:
        console.print("demo stopped")
    raise typer.Exit(int(code))


__all__ = ["DEMO_PRODUCTS", "demo"]
