"""Reconciliations as they were recorded: per flow, what was compared and the drift found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from koppel.store.context import StoreContext
from koppel.store.tables import ReconciliationRow


@dataclass(frozen=True, slots=True)
class ReconciliationRecord:
    id: int
    flow_id: int
    started_at: datetime
    finished_at: datetime
    compared: int
    drift: int
    """Every difference found; `differences` keeps the first of them."""
    api_calls: int
    differences: list[dict[str, Any]]
    error: str | None


def _record(row: ReconciliationRow) -> ReconciliationRecord:
    return ReconciliationRecord(
        id=row.id,
        flow_id=row.flow_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        compared=row.compared,
        drift=row.drift,
        api_calls=row.api_calls,
        differences=list(row.differences),
        error=row.error,
    )


class ReconciliationRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def add(
        self,
        flow_id: int,
        *,
        started_at: datetime,
        finished_at: datetime,
        compared: int,
        drift: int,
        api_calls: int,
        differences: Sequence[Mapping[str, Any]],
        error: str | None = None,
    ) -> int:
        with self._context.write() as session:
            self._context.require_flow(session, flow_id)
            row = ReconciliationRow(
                flow_id=flow_id,
                started_at=started_at,
                finished_at=finished_at,
                compared=compared,
                drift=drift,
                api_calls=api_calls,
                differences=[dict(d) for d in differences],
                error=error,
            )
            session.add(row)
            session.flush()
            return int(row.id)

    def latest(
        self, flow_ids: Sequence[int], *, before: datetime | None = None
    ) -> dict[int, ReconciliationRecord]:
        """The last reconciliation of each of these flows (finished before `before`), by flow."""
        if not flow_ids:
            return {}
        window = [] if before is None else [ReconciliationRow.finished_at < before]
        with self._context.read() as session:
            last = (
                select(func.max(ReconciliationRow.id))
                .where(
                    ReconciliationRow.flow_id.in_(list(flow_ids)),
                    self._context.in_tenant_flows(ReconciliationRow.flow_id),
                    *window,
                )
                .group_by(ReconciliationRow.flow_id)
            )
            rows = session.scalars(select(ReconciliationRow).where(ReconciliationRow.id.in_(last)))
            return {row.flow_id: _record(row) for row in rows}

    def get(self, reconciliation_id: int) -> ReconciliationRecord | None:
        with self._context.read() as session:
            row = session.scalar(
                select(ReconciliationRow).where(
                    ReconciliationRow.id == reconciliation_id,
                    self._context.in_tenant_flows(ReconciliationRow.flow_id),
                )
            )
            return None if row is None else _record(row)


__all__ = ["ReconciliationRecord", "ReconciliationRepository"]
