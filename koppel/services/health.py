"""Whether a process can do its work: what `/readyz` answers.

Ready means the store answers, its schema is at the migrations' head (a process that is older
or newer than the database would misread it), and, when the process runs the engine, the engine
is running. A reason says what is wrong and what to check, and never shows data: no URL, no
path, no record.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from koppel.engine.runner import FlowRunner
from koppel.store import Store
from koppel.store.database import at_head

logger = logging.getLogger(__name__)


def _missing_sqlite_file(store: Store) -> bool:
    """A SQLite store whose file was removed: an open connection still reads the removed
    file, so only the file system tells."""
    url = store.engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return False
    return not Path(str(database)).exists()


def not_ready(store: Store, runner: FlowRunner | None) -> str | None:
    """Why the process is not ready, or None when it is."""
    if _missing_sqlite_file(store):
        return (
            "the store's SQLite file is missing; restore it or check KOPPEL_HOME and "
            "KOPPEL_DATABASE_URL"
        )
    try:
        current = at_head(store.engine)
    except SQLAlchemyError as error:
        logger.warning("readiness: the store did not answer: %s", type(error).__name__)
        return (
            f"the store does not answer ({type(error).__name__}); check that the database "
            "runs and KOPPEL_DATABASE_URL"
        )
    if not current:
        return (
            "the store's schema is not at this version's migrations; restart the server "
            "(every Koppel command brings the schema up to date when it opens the store)"
        )
    if runner is not None and not runner.engine.running:
        return "the engine is not running (stopped or failed to start); see the server's log"
    return None


__all__ = ["not_ready"]
