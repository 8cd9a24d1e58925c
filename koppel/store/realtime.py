"""Repositories for real time: webhook subscriptions and accepted deliveries, pending changes.

These are system data of the process that receives webhooks (no user reads them through a
workspace): the store that calls them is the system store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from koppel.store.context import StoreContext, chunks, upsert
from koppel.store.tables import (
    PendingChangeRow,
    WebhookDeliveryRow,
    WebhookSubscriptionRow,
    utc_now,
)


def token_hash(token: str) -> str:
    """What is kept of a delivery URL's token: enough to recognise it, never to rebuild it."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class WebhookSubscription:
    """A connection's subscription as Koppel keeps it (the secret stays in the store)."""

    connection_id: int
    remote_id: str
    base_url: str
    events: tuple[str, ...]
    created_at: datetime


def _subscription(row: WebhookSubscriptionRow) -> WebhookSubscription:
    return WebhookSubscription(
        connection_id=row.connection_id,
        remote_id=row.remote_id,
        base_url=row.base_url,
        events=tuple(row.events),
        created_at=row.created_at,
    )


class WebhookRepository:
    """Subscriptions per connection, and the delivery ids each one has accepted."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def subscriptions(self) -> list[WebhookSubscription]:
        with self._context.read() as session:
            rows = session.scalars(
                select(WebhookSubscriptionRow).order_by(WebhookSubscriptionRow.connection_id)
            )
            return [_subscription(row) for row in rows]

    def get(self, connection_id: int) -> WebhookSubscription | None:
        with self._context.read() as session:
            row = session.get(WebhookSubscriptionRow, connection_id)
            return None if row is None else _subscription(row)

    def by_token(self, token: str) -> tuple[WebhookSubscription, str] | None:
        """The subscription whose URL ends in `token`, and its signing secret."""
        with self._context.read() as session:
            row = session.scalar(
                select(WebhookSubscriptionRow).where(
                    WebhookSubscriptionRow.token_hash == token_hash(token)
                )
            )
            if row is None:
                return None
            secret = str(self._context.secret_box.decrypt_json(row.secret)["secret"])
            return _subscription(row), secret

    def put(
        self,
        connection_id: int,
        *,
        token: str,
        remote_id: str,
        base_url: str,
        events: Sequence[str],
        secret: str,
    ) -> None:
        """Keep the connection's (new) subscription, in place of one it had."""
        with self._context.write() as session:
            session.execute(
                delete(WebhookSubscriptionRow).where(
                    WebhookSubscriptionRow.connection_id == connection_id
                )
            )
            session.add(
                WebhookSubscriptionRow(
                    connection_id=connection_id,
                    token_hash=token_hash(token),
                    remote_id=remote_id,
                    base_url=base_url,
                    events=list(events),
                    secret=self._context.secret_box.encrypt_json({"secret": secret}),
                )
            )

    def delete(self, connection_id: int) -> None:
        with self._context.write() as session:
            session.execute(
                delete(WebhookSubscriptionRow).where(
                    WebhookSubscriptionRow.connection_id == connection_id
                )
            )

    def accept_deliveries(
        self,
        deliveries: Sequence[tuple[int, str]],
        *,
        window: timedelta,
        now: datetime | None = None,
    ) -> list[bool]:
        """For each (connection id, delivery id): True the first time it comes, False for a
        replay (also of one earlier in `deliveries`). Ids older than `window` (beyond the
        signature's tolerance: a delivery that old is refused before it gets here) are
        forgotten in the same step, so the table holds only a window's worth."""
        moment = now or utc_now()
        accepted: list[bool] = []
        with self._context.write() as session:
            session.execute(
                delete(WebhookDeliveryRow).where(WebhookDeliveryRow.received_at < moment - window)
            )
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            for connection_id, delivery_id in deliveries:
                inserted = session.execute(
                    insert(WebhookDeliveryRow)
                    .values(
                        connection_id=connection_id, delivery_id=delivery_id, received_at=moment
                    )
                    .on_conflict_do_nothing(index_elements=["connection_id", "delivery_id"])
                    .returning(WebhookDeliveryRow.delivery_id)
                ).first()
                accepted.append(inserted is not None)
        return accepted


class PendingChangeRepository:
    """The records webhooks named per flow (and phase of its run), until a run syncs them."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def add(self, flow_id: int, phase: str, keys: Sequence[str]) -> None:
        """Name these records (again): one row each, unclaimed, received now."""
        now = utc_now()
        with self._context.write() as session:
            upsert(
                session,
                PendingChangeRow,
                [
                    {"flow_id": flow_id, "phase": phase, "key": key, "received_at": now}
                    for key in dict.fromkeys(keys)
                ],
                key=("flow_id", "phase", "key"),
                update=("received_at",),
                update_values={"claimed_by": None},
            )

    def claim(self, flow_id: int, run_id: str, *, limit: int) -> list[tuple[str, str]]:
        """(phase, key) of the rows this run claimed and has not finished (a batch run again
        after a crash), else of up to `limit` unclaimed rows, oldest first, now claimed."""
        with self._context.write() as session:
            mine = self._claimed(session, flow_id, run_id)
            if mine:
                return mine
            free = session.execute(
                select(PendingChangeRow.phase, PendingChangeRow.key)
                .where(
                    PendingChangeRow.flow_id == flow_id,
                    PendingChangeRow.claimed_by.is_(None),
                )
                .order_by(PendingChangeRow.received_at, PendingChangeRow.key)
                .limit(limit)
            ).all()
            by_phase: dict[str, list[str]] = {}
            for phase, key in free:
                by_phase.setdefault(phase, []).append(key)
            for phase, keys in by_phase.items():
                for part in chunks(keys):
                    session.execute(
                        update(PendingChangeRow)
                        .where(
                            PendingChangeRow.flow_id == flow_id,
                            PendingChangeRow.phase == phase,
                            PendingChangeRow.key.in_(part),
                            PendingChangeRow.claimed_by.is_(None),
                        )
                        .values(claimed_by=run_id)
                    )
            return self._claimed(session, flow_id, run_id)

    @staticmethod
    def _claimed(session: Session, flow_id: int, run_id: str) -> list[tuple[str, str]]:
        rows = session.execute(
            select(PendingChangeRow.phase, PendingChangeRow.key)
            .where(PendingChangeRow.flow_id == flow_id, PendingChangeRow.claimed_by == run_id)
            .order_by(PendingChangeRow.phase, PendingChangeRow.key)
        ).all()
        return [(str(phase), str(key)) for phase, key in rows]

    def release(self, flow_id: int, run_id: str) -> None:
        """The run has synced what it claimed: those rows go (one named again meanwhile was
        unclaimed by that, and stays for the next run)."""
        with self._context.write() as session:
            session.execute(
                delete(PendingChangeRow).where(
                    PendingChangeRow.flow_id == flow_id, PendingChangeRow.claimed_by == run_id
                )
            )

    def drop(self, flow_id: int, *, received_until: datetime) -> None:
        """Forget the unclaimed rows received until then (a run that waits for another flow,
        or fails, leaves them to the full run that follows, which reads them from its cursor)."""
        with self._context.write() as session:
            session.execute(
                delete(PendingChangeRow).where(
                    PendingChangeRow.flow_id == flow_id,
                    PendingChangeRow.claimed_by.is_(None),
                    PendingChangeRow.received_at <= received_until,
                )
            )

    def count(self) -> int:
        """Rows of every flow, claimed by a run or not: what is still to be synced."""
        with self._context.read() as session:
            return int(session.scalar(select(func.count()).select_from(PendingChangeRow)) or 0)

    def waiting(self) -> dict[int, int]:
        """Flow id -> rows not yet claimed, for the flows that have any."""
        with self._context.read() as session:
            rows = session.execute(
                select(PendingChangeRow.flow_id, func.count())
                .where(PendingChangeRow.claimed_by.is_(None))
                .group_by(PendingChangeRow.flow_id)
            ).all()
            return {int(flow_id): int(count) for flow_id, count in rows}


__all__ = [
    "PendingChangeRepository",
    "WebhookRepository",
    "WebhookSubscription",
    "token_hash",
]
