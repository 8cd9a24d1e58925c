"""Connection limits shared by every process on a PostgreSQL store: slots and pace.

The requests in flight of a connection are rows of `connection_slots`, at most `concurrency`
unexpired ones; the rate of request starts is one row of `connection_pace`, moved on the
database's clock, so processes on different hosts agree on it. A request costs two short
transactions (take a slot and a start; give the slot back), on plain connections rather than
ORM sessions (they are on every request's path): the figures are exact whatever the number of
processes, and a process that dies holding slots gives them back when they expire. SQLite
stores serve one process, which keeps these limits in memory (`koppel.connectors.base.LocalGate`)
and never calls this.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from koppel.store.context import StoreContext

_ARGS = """(SELECT clock_timestamp() AS now, CAST(:ceiling AS float8) AS ceiling,
    CAST(:floor AS float8) AS floor, CAST(:observed AS float8) AS observed,
    CAST(:retry_after AS float8) AS retry_after, CAST(:step AS float8) AS step,
    CAST(:off_above AS float8) AS off_above) AS a"""
"""Every argument typed, with one clock reading for the whole statement."""

_TAKE_SLOT = text(
    """
    WITH free AS (
        SELECT n FROM generate_series(0, CAST(:concurrency AS integer) - 1) AS n
        WHERE NOT EXISTS (
            SELECT 1 FROM connection_slots AS s
            WHERE s.connection_id = :connection AND s.slot = n AND s.expires_at > clock_timestamp()
        )
        ORDER BY random() LIMIT 1
    )
    INSERT INTO connection_slots (connection_id, slot, owner, expires_at)
    SELECT :connection, n, :owner, clock_timestamp() + make_interval(secs => CAST(:ttl AS float8))
    FROM free
    ON CONFLICT (connection_id, slot) DO UPDATE
        SET owner = excluded.owner, expires_at = excluded.expires_at
        WHERE connection_slots.expires_at <= clock_timestamp()
    RETURNING slot
    """
)
"""A random free slot (two takers seldom race for one; the loser of a race gets none and asks
again): the row is new, or one whose holder's lease ran out."""

_RATE_NOW = "LEAST(COALESCE(p.rate, a.ceiling), a.ceiling)"
"""The rate, under a ceiling set (or lowered) since the row was made: it applies at once
(LEAST skips NULLs: no ceiling keeps the rate, and no rate nor ceiling stays NULL)."""

_RESERVE = text(
    f"""
    UPDATE connection_pace AS p SET
        rate = {_RATE_NOW},
        next_start = CASE WHEN {_RATE_NOW} IS NULL THEN p.next_start
            ELSE GREATEST(a.now, p.paused_until, p.next_start)
                + make_interval(secs => 1.0 / {_RATE_NOW}) END
    FROM {_ARGS}
    WHERE p.connection_id = :connection
    RETURNING p.rate, EXTRACT(EPOCH FROM (
        CASE WHEN p.rate IS NULL THEN GREATEST(a.now, p.paused_until)
             ELSE p.next_start - make_interval(secs => 1.0 / p.rate) END
    ) - a.now)
    """
)
"""Take the next start: the rate now, and the seconds to wait before the start."""

_HALVED = "LEAST(GREATEST(COALESCE(p.rate, a.observed) / 2, a.floor), a.ceiling)"
_PAUSE = f"make_interval(secs => COALESCE(a.retry_after, 1.0 / {_HALVED}))"

_THROTTLED = text(
    f"""
    UPDATE connection_pace AS p SET
        rate = {_HALVED},
        paused_until = a.now + {_PAUSE},
        next_start = GREATEST(p.next_start, a.now + {_PAUSE})
    FROM {_ARGS}
    WHERE p.connection_id = :connection AND p.paused_until <= a.now
    """
)
"""`RateLimiter.throttled` on the shared row: once per pause, whichever process saw the 429."""

_ANSWERED = text(
    f"""
    UPDATE connection_pace AS p SET rate = CASE
        WHEN a.ceiling IS NOT NULL THEN LEAST(p.rate + a.step, a.ceiling)
        WHEN p.rate + a.step > a.off_above THEN NULL
        ELSE p.rate + a.step END
    FROM {_ARGS}
    WHERE p.connection_id = :connection AND p.rate IS NOT NULL
        AND p.rate IS DISTINCT FROM a.ceiling
    RETURNING p.rate
    """
)
"""`RateLimiter.answered` on the shared row."""

_NO_ARGUMENTS = {
    "ceiling": None,
    "floor": None,
    "observed": None,
    "retry_after": None,
    "step": None,
    "off_above": None,
}


class ConnectionLimitRepository:
    """The slots and the pace of connections, shared through the database (PostgreSQL)."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def take(
        self,
        connection_id: int,
        *,
        concurrency: int,
        owner: str,
        ttl_s: float,
        ceiling: float | None,
    ) -> tuple[int, float | None, float] | None:
        """A slot of the connection for one request, held by `owner` for at most `ttl_s`, and
        the request's start: (the slot, the rate now, the seconds to wait before the start);
        None when all `concurrency` slots are held. One transaction, one round trip's worth:
        a request costs this and `free_slot`."""
        with self._context.engine.begin() as db:
            slot = db.execute(
                _TAKE_SLOT,
                {
                    "connection": connection_id,
                    "concurrency": concurrency,
                    "owner": owner,
                    "ttl": ttl_s,
                },
            ).scalar()
            if slot is None:
                return None
            rate, wait = self._reserve(db, connection_id, ceiling)
        return int(slot), rate, wait

    def free_slot(self, connection_id: int, slot: int, owner: str) -> None:
        """Give a slot back (one that expired and went to another owner stays theirs)."""
        with self._context.engine.begin() as db:
            db.execute(
                text(
                    "DELETE FROM connection_slots "
                    "WHERE connection_id = :connection AND slot = :slot AND owner = :owner"
                ),
                {"connection": connection_id, "slot": slot, "owner": owner},
            )

    def free_owner(self, owner: str) -> None:
        """Give back every slot `owner` still holds (its client closes)."""
        with self._context.engine.begin() as db:
            db.execute(text("DELETE FROM connection_slots WHERE owner = :owner"), {"owner": owner})

    def held(self, connection_id: int) -> int:
        """How many of the connection's slots are held now (unexpired)."""
        with self._context.engine.connect() as db:
            count = db.execute(
                text(
                    "SELECT count(*) FROM connection_slots "
                    "WHERE connection_id = :connection AND expires_at > clock_timestamp()"
                ),
                {"connection": connection_id},
            ).scalar()
        return int(count or 0)

    @staticmethod
    def _reserve(
        db: Connection, connection_id: int, ceiling: float | None
    ) -> tuple[float | None, float]:
        parameters = {**_NO_ARGUMENTS, "connection": connection_id, "ceiling": ceiling}
        row = db.execute(_RESERVE, parameters).one_or_none()
        if row is None:  # the connection's first request: its row is made once
            db.execute(
                text(
                    "INSERT INTO connection_pace (connection_id, rate, next_start, "
                    "paused_until) VALUES (:connection, NULL, clock_timestamp(), "
                    "clock_timestamp()) ON CONFLICT (connection_id) DO NOTHING"
                ),
                {"connection": connection_id},
            )
            row = db.execute(_RESERVE, parameters).one()
        rate, wait = row
        return (None if rate is None else float(rate)), max(0.0, float(wait))

    def throttled(
        self,
        connection_id: int,
        *,
        ceiling: float | None,
        floor: float,
        observed: float,
        retry_after: float | None,
    ) -> None:
        """The API answered 429: halve the shared rate (once per pause) and pause every start."""
        with self._context.engine.begin() as db:
            db.execute(
                _THROTTLED,
                {
                    **_NO_ARGUMENTS,
                    "connection": connection_id,
                    "ceiling": ceiling,
                    "floor": floor,
                    "observed": observed,
                    "retry_after": retry_after,
                },
            )

    def answered(
        self, connection_id: int, *, ceiling: float | None, step: float, off_above: float
    ) -> float | None:
        """An answer that was not a 429: raise the shared rate by `step`; the rate now."""
        with self._context.engine.begin() as db:
            rate = db.execute(
                _ANSWERED,
                {
                    **_NO_ARGUMENTS,
                    "connection": connection_id,
                    "ceiling": ceiling,
                    "step": step,
                    "off_above": off_above,
                },
            ).scalar()
        return None if rate is None else float(rate)


__all__ = ["ConnectionLimitRepository"]
