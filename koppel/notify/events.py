"""Which events a workspace is told about, found in the store and queued in the outbox.

Each event has a key derived from what caused it, and the outbox keeps one entry per key and
channel, so looking again (every few seconds, from every worker) never queues an event twice:

- `run-failed:<run id>`: a run failed, with its reason.
- `records-failed:<flow id>:<window start>`: the records of a flow that failed since the last
  digest, one message per flow per `digest_every`, never one per record.
- `connection-down:<connection id>:<its last good answer>`: the connection's calls fail. Every
  run of one outage shares its last good answer, so an outage is told once.
- `connection-recovered:<connection id>:<the same>`: it answers again, once per outage told.
- `connection-needs-authorisation:<connection id>:<when it was marked>`.
- `daily-report:<integration id>:<day>`: with `daily_report: true`, after each day (UTC) one
  report per integration: per flow its runs, records and dead letters waiting, and the drift
  its last reconciliation up to the end of the day found (koppel.services.reconcile).

Only what happened after the workspace's notifications were set up is told (`active_since`),
and failed runs of the last `LOOK_BACK` (a day) only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from koppel.config.model import NotificationSettings
from koppel.notify.channels import Notification
from koppel.store import Connection, ConnectionState, Store
from koppel.store.notifications import (
    FailedRecords,
    FailedRun,
    FlowDay,
    NotificationSettingsRecord,
)
from koppel.store.reconciliations import ReconciliationRecord

COUNTED = ("created", "updated", "skipped", "failed")
LOOK_BACK = timedelta(days=1)
"""Failed runs are looked for this far back: a worker stopped for longer does not tell older
ones when it starts again (they are on the runs page)."""


def workspace_settings(store: Store, tenant_id: int) -> NotificationSettings | None:
    record = store.notifications.get_settings(tenant_id)
    return None if record is None else _settings(record)


def _settings(record: NotificationSettingsRecord) -> NotificationSettings:
    return NotificationSettings.from_stored(record.settings, record.secrets)


def queue_events(store: Store, tenant_id: int, *, now: datetime) -> int:
    """Queue every event of the workspace not queued yet; returns how many entries are new."""
    record = store.notifications.get_settings(tenant_id)
    if record is None:
        return 0
    settings = _settings(record)
    channels = settings.channels()
    if not channels:
        return 0
    tenant = store.tenants.get(tenant_id)
    workspace = tenant.name if tenant else str(tenant_id)
    link = settings.link_base.rstrip("/")
    since = max(record.active_since, now - LOOK_BACK)
    events: list[Notification] = [
        run_failed(run, workspace=workspace, link=link)
        for run in store.notifications.failed_runs(tenant_id, since=since)
    ]
    events.extend(_connection_events(store, tenant_id, record.active_since, workspace, link))
    known = store.notifications.queued_keys(tenant_id, [event.key for event in events])
    queued = sum(
        store.notifications.enqueue(
            tenant_id, event.key, event.kind, _payload(event), channels, now=now
        )
        for event in events
        if event.key not in known
    )
    if settings.daily_report:
        queued += _queue_daily_reports(store, record, channels, workspace, link, now=now)
    if now - record.digest_until >= timedelta(seconds=settings.digest_every):
        # The mark moves and the digests are queued in one transaction: once per window, even
        # with several workers looking at once.
        with store.transaction() as tx:
            if tx.notifications.move_digest_until(tenant_id, was=record.digest_until, until=now):
                for group in tx.notifications.failed_records(
                    tenant_id, after=record.digest_until, until=now
                ):
                    digest = records_failed(
                        group, since=record.digest_until, workspace=workspace, link=link
                    )
                    queued += tx.notifications.enqueue(
                        tenant_id, digest.key, digest.kind, _payload(digest), channels, now=now
                    )
    return queued


def _queue_daily_reports(
    store: Store,
    record: NotificationSettingsRecord,
    channels: list[str],
    workspace: str,
    link: str,
    *,
    now: datetime,
) -> int:
    """Yesterday's report (UTC) per integration, once; not for a day before the set-up."""
    end = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=1)
    if record.active_since >= end:
        return 0
    days = store.notifications.flow_days(record.tenant_id, start=start, end=end)
    integrations: dict[int, list[FlowDay]] = {}
    for day in days:
        integrations.setdefault(day.integration_id, []).append(day)
    reconciled = store.reconciliations.latest([day.flow_id for day in days], before=end)
    queued = 0
    for integration_id, flows in integrations.items():
        report = daily_report(
            integration_id, flows, day=start, workspace=workspace, link=link, reconciled=reconciled
        )
        if not store.notifications.queued_keys(record.tenant_id, [report.key]):
            queued += store.notifications.enqueue(
                record.tenant_id, report.key, report.kind, _payload(report), channels, now=now
            )
    return queued


def daily_report(
    integration_id: int,
    flows: list[FlowDay],
    *,
    day: datetime,
    workspace: str,
    link: str,
    reconciled: Mapping[int, ReconciliationRecord] | None = None,
) -> Notification:
    """`reconciled`: each flow's last reconciliation by flow id (flows without one say nothing
    of drift)."""
    integration = flows[0].integration
    last = reconciled or {}
    lines = []
    for flow in flows:
        runs = ", ".join(f"{status} {n}" for status, n in sorted(flow.runs.items())) or "none"
        records = ", ".join(f"{kind} {flow.counts.get(kind, 0)}" for kind in COUNTED)
        check = last.get(flow.flow_id)
        drift = "" if check is None else f"; {_drift_line(check)}"
        lines.append(
            f"- {flow.flow}: runs {runs}; records {records}; "
            f"dead letters waiting {flow.dead_letters}{drift}"
        )
    failed_runs = sum(flow.runs.get("failed", 0) for flow in flows)
    waiting = sum(flow.dead_letters for flow in flows)
    drifted = sum(check.drift for f in flows if (check := last.get(f.flow_id)) is not None)
    date = f"{day:%Y-%m-%d}"
    return Notification(
        key=f"daily-report:{integration_id}:{date}",
        kind="daily_report",
        title=(
            f"Koppel: {integration} on {date}: {failed_runs} failed runs, "
            f"{waiting} dead letters waiting"
            + (f", reconciliation found {_differences(drifted)}" if drifted else "")
        ),
        text=(
            f"Integration {integration} (workspace {workspace}) on {date} (UTC):\n"
            + "\n".join(lines)
            + f"\nSee {link}/runs and {link}/dead-letters"
            + (f"; the drift at {link}/reconciliation" if last else "")
        ),
        data={
            "workspace": workspace,
            "integration": integration,
            "day": date,
            "flows": [
                {
                    "flow": flow.flow,
                    "runs": flow.runs,
                    "counts": {kind: flow.counts.get(kind, 0) for kind in COUNTED},
                    "dead_letters_waiting": flow.dead_letters,
                    "drift": _drift_data(last.get(flow.flow_id)),
                }
                for flow in flows
            ],
            "link": f"{link}/runs",
        },
    )


def _drift_line(check: ReconciliationRecord) -> str:
    when = f"{check.finished_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if check.error is not None:
        return f"reconciliation of {when} could not compare: {check.error.splitlines()[0]}"
    return f"reconciliation {when}: {_differences(check.drift)} in {check.compared} records"


def _differences(number: int) -> str:
    return f"{number} difference" if number == 1 else f"{number} differences"


def _drift_data(check: ReconciliationRecord | None) -> dict[str, Any] | None:
    """What the last reconciliation found, for the webhook's structured data."""
    if check is None:
        return None
    return {
        "reconciled_at": check.finished_at.isoformat(),
        "compared": check.compared,
        "differences": check.drift,
        "error": check.error,
    }


def _payload(notification: Notification) -> dict[str, Any]:
    return {
        "key": notification.key,
        "kind": notification.kind,
        "title": notification.title,
        "text": notification.text,
        "data": notification.data,
    }


def from_payload(payload: dict[str, Any]) -> Notification:
    return Notification(
        key=str(payload["key"]),
        kind=str(payload["kind"]),
        title=str(payload["title"]),
        text=str(payload["text"]),
        data=dict(payload.get("data") or {}),
    )


def run_failed(run: FailedRun, *, workspace: str, link: str) -> Notification:
    label = f"run {run.number}" if run.number is not None else f"run {run.run_id}"
    reason = run.error or "no reason was recorded; see the run's page"
    counts = {kind: int(run.counts.get(kind, 0)) for kind in COUNTED}
    url = f"{link}/runs/{run.run_id}"
    told = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    return Notification(
        key=f"run-failed:{run.run_id}",
        kind="run_failed",
        title=f"Koppel: {label} of {run.integration}/{run.flow} failed",
        text=(
            f"{label.capitalize()} of flow {run.flow} (integration {run.integration}, workspace "
            f"{workspace}) failed: {reason}\nRecords: {told}.\nSee {url}"
        ),
        data={
            "workspace": workspace,
            "integration": run.integration,
            "flow": run.flow,
            "run": {"id": run.run_id, "number": run.number},
            "counts": counts,
            "error": reason,
            "link": url,
        },
    )


def records_failed(
    group: FailedRecords, *, since: datetime, workspace: str, link: str
) -> Notification:
    url = f"{link}/dead-letters"
    examples = "\n".join(f"- {key}: {reason}" for key, reason in group.examples)
    more = group.count - len(group.examples)
    records = "record" if group.count == 1 else "records"
    return Notification(
        key=f"records-failed:{group.flow_id}:{since.isoformat()}",
        kind="records_failed",
        title=f"Koppel: {group.count} {records} of {group.integration}/{group.flow} failed",
        text=(
            f"{group.count} {records} of flow {group.flow} (integration {group.integration}, "
            f"workspace {workspace}) failed since {since:%Y-%m-%d %H:%M} UTC and wait on the "
            f"dead-letter list for a retry:\n{examples}"
            + (f"\n... and {more} more" if more > 0 else "")
            + f"\nFix the cause, then retry them: {url}"
        ),
        data={
            "workspace": workspace,
            "integration": group.integration,
            "flow": group.flow,
            "counts": {"failed": group.count},
            "records": [{"key": key, "error": reason} for key, reason in group.examples],
            "link": url,
        },
    )


def _connection_events(
    store: Store, tenant_id: int, since: datetime, workspace: str, link: str
) -> Iterable[Notification]:
    integrations = store.integrations.list(tenant_id)
    for connection in store.connections.list(tenant_id):
        names = [
            i.name for i in integrations if connection.id in (i.connection_a_id, i.connection_b_id)
        ]
        data = {
            "workspace": workspace,
            "integration": ", ".join(names),
            "connection": connection.name,
            "link": f"{link}/connections",
        }
        if connection.state == ConnectionState.NEEDS_AUTHORISATION:
            if connection.updated_at >= since:
                yield _needs_authorisation(connection, data)
            continue
        error_at, ok_at = connection.last_error_at, connection.last_ok_at
        outage = f"{connection.id}:{ok_at.isoformat() if ok_at else 'never'}"
        if error_at is not None and error_at >= since and (ok_at is None or error_at > ok_at):
            yield Notification(
                key=f"connection-down:{outage}",
                kind="connection_down",
                title=f"Koppel: connection {connection.name} is down",
                text=(
                    f"Connection {connection.name} ({connection.application}, workspace "
                    f"{workspace}) fails: {connection.last_error}\nThe runs that need it fail "
                    "until it answers again; you get one message when it does. "
                    f"See {link}/connections"
                ),
                data={**data, "error": connection.last_error},
            )
        elif ok_at is not None:
            down = store.notifications.latest_event(tenant_id, f"connection-down:{connection.id}:")
            if down is not None:
                yield Notification(
                    key=down.replace("connection-down:", "connection-recovered:", 1),
                    kind="connection_recovered",
                    title=f"Koppel: connection {connection.name} works again",
                    text=(
                        f"Connection {connection.name} ({connection.application}, workspace "
                        f"{workspace}) answers again since {ok_at:%Y-%m-%d %H:%M:%S} UTC."
                    ),
                    data=data,
                )


def _needs_authorisation(connection: Connection, data: dict[str, Any]) -> Notification:
    reason = connection.state_reason or "the application refused its grant"
    return Notification(
        key=f"connection-needs-authorisation:{connection.id}:{connection.updated_at.isoformat()}",
        kind="connection_needs_authorisation",
        title=f"Koppel: connection {connection.name} needs authorisation",
        text=(
            f"Connection {connection.name} ({connection.application}, workspace "
            f"{data['workspace']}) must be authorised again: {reason}\nIts runs fail until "
            f"then. Authorise it on {data['link']}"
        ),
        data={**data, "error": reason},
    )


__all__ = [
    "daily_report",
    "from_payload",
    "queue_events",
    "records_failed",
    "run_failed",
    "workspace_settings",
]
