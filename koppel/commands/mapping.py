"""`koppel mapping show | validate | preview | versions | restore`: a flow's mapping, up front.

show, validate and preview read the integration file (they do not apply it): the mapping shown is
the connectors' default with the file's overrides merged on, checked against the connectors'
schemas the way the flow checks it when it runs (`koppel.services.mappings`).
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from koppel.commands.common import (
    ConfigFile,
    ExitCode,
    IntegrationOption,
    NamingConfigFile,
    console,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
    pick_integration,
    plain,
    problem,
    when,
)
from koppel.config import load_config
from koppel.mapping import render_issues, render_mapping, render_preview
from koppel.services import checks, mappings, setup
from koppel.services.checks import SIDES, FlowMappingView

mapping_app = typer.Typer(
    no_args_is_help=True,
    help="Show, check and try a flow's mapping; list and restore its versions.",
)


class SideChoice(StrEnum):
    get = "get"
    send = "send"


class OperationChoice(StrEnum):
    create = "create"
    update = "update"


FlowOption = Annotated[str, typer.Option("--flow", "-f", help="the flow's name in the file")]
SideOption = Annotated[
    SideChoice | None,
    typer.Option(help="get: source -> canonical; send: canonical -> target (default: both)"),
]


def _inspect(config: Path, flow: str) -> FlowMappingView:
    return checks.inspect_file_mapping(load_config(config), config, flow)


def _sides(side: SideChoice | None) -> tuple[str, ...]:
    return (side.value,) if side else SIDES


def _stage_title(view: FlowMappingView, side: str) -> str:
    if side == "get":
        return f"get side: {view.applications['get']} {view.entity} -> canonical {view.entity}"
    return f"send side: canonical {view.entity} -> {view.applications['send']} {view.entity}"


def _print_issues(view: FlowMappingView, sides: tuple[str, ...]) -> None:
    for name in sides:
        console.print(f"[bold]{_stage_title(view, name)}[/]")
        console.print(render_issues(view.issues[name]))


@mapping_app.command()
@friendly_errors
def show(config: ConfigFile, flow: FlowOption, side: SideOption = None) -> None:
    """The effective mapping: the connector's default with the file's overrides merged on."""
    view = _inspect(config, flow)
    for name in _sides(side):
        console.print(f"[bold]{_stage_title(view, name)}[/]")
        if name in view.specs:
            console.print(render_mapping(view.specs[name]))
        else:
            console.print(render_issues(view.issues[name]))
    if view.has_errors(_sides(side)):
        raise typer.Exit(int(ExitCode.FAILED))


@mapping_app.command("validate")
@friendly_errors
def validate_command(config: ConfigFile, flow: FlowOption, side: SideOption = None) -> None:
    """Check the mapping against both connectors' schemas; exit 1 when it has errors."""
    view = _inspect(config, flow)
    _print_issues(view, _sides(side))
    if view.has_errors(_sides(side)):
        problem(f"flow {flow}: the mapping has errors; fix them in {config}")
        raise typer.Exit(int(ExitCode.FAILED))


def _record_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: file not found")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(f"{path}: not a JSON file ({type(error).__name__}: {error})")
    if not isinstance(data, dict):
        fail(f"{path}: must hold one record: a JSON object, as the source's API returns it")
    return data


def _sample(config: Path, flow: str) -> dict[str, Any]:
    settings = load_settings()
    with opened_store(settings) as store:
        return asyncio.run(mappings.sample_record(store, load_config(config), config, flow))


@mapping_app.command("preview")
@friendly_errors
def preview_command(
    config: ConfigFile,
    flow: FlowOption,
    record: Annotated[
        Path | None, typer.Option(help="a source record as JSON (the source API's shape)")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="read the first record from the source connection")
    ] = False,
    operation: Annotated[
        OperationChoice, typer.Option(help="what the target gets on create or on update")
    ] = OperationChoice.create,
) -> None:
    """One record through both stages, source -> canonical -> target, with warnings.

    Nothing is written. --sample reads through the stored connection, so apply the file first.
    """
    if (record is None) == (not sample):
        fail("give exactly one of --record FILE.json and --sample")
    view = _inspect(config, flow)
    if view.has_errors():
        _print_issues(view, SIDES)
        problem(f"flow {flow}: fix the mapping errors in {config} first")
        raise typer.Exit(int(ExitCode.FAILED))
    source_record = _record_file(record) if record is not None else _sample(config, flow)
    previewed = mappings.preview_record(
        view, source_record, operation="update" if operation is OperationChoice.update else "create"
    )
    console.print(render_preview(previewed.preview))
    if previewed.resolved:
        console.print(
            f"note: {', '.join(previewed.resolved)} come from values the flow looks up in the "
            "target during a run; a preview leaves them empty",
            markup=False,
        )
    if previewed.preview.error is not None:
        raise typer.Exit(int(ExitCode.FAILED))


def _overridden(overrides: dict[str, tuple[str, ...]]) -> str:
    parts = [f"{side}: {', '.join(names)}" for side, names in overrides.items()]
    return "; ".join(parts) or "defaults"


@mapping_app.command()
@friendly_errors
def versions(
    flow: FlowOption, config: NamingConfigFile = None, integration: IntegrationOption = None
) -> None:
    """The flow's stored mapping versions, oldest first; the current one is marked."""
    settings = load_settings()
    with opened_store(settings) as store:
        chosen = pick_integration(store, config, integration)
        [found] = setup.choose_flows(store, chosen, [flow])
        history = mappings.mapping_versions(store, found)
    table = Table(title=f"Mapping versions of flow {flow} (times in UTC)")
    table.add_column("version", justify="right")
    table.add_column("created")
    table.add_column("note")
    table.add_column("overrides", overflow="fold")
    for item in history:
        current = " (current)" if item.current else ""
        table.add_row(
            *plain(
                f"v{item.version}{current}",
                when(item.created_at),
                item.note,
                _overridden(item.overrides),
            )
        )
    console.print(table)


@mapping_app.command()
@friendly_errors
def restore(
    version: Annotated[int, typer.Argument(help="the version to make current again")],
    flow: FlowOption,
    config: NamingConfigFile = None,
    integration: IntegrationOption = None,
) -> None:
    """Make an earlier mapping version current again (as a new version)."""
    settings = load_settings()
    with opened_store(settings) as store:
        chosen = pick_integration(store, config, integration)
        [found] = setup.choose_flows(store, chosen, [flow])
        restored = mappings.restore_mapping(store, found, version, actor="cli")
    console.print(
        f"flow {flow}: mapping v{version} restored as v{restored.version}; the next runs use "
        "it.\nThe integration file keeps its own mapping: applying it again (sync, config apply) "
        "makes the file's mapping current. To keep this one, put it in the file:",
        markup=False,
    )
    console.print(
        yaml.safe_dump({"mapping": restored.mapping}, sort_keys=False, allow_unicode=True),
        markup=False,
        highlight=False,
    )


__all__ = ["mapping_app"]
