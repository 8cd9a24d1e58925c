"""A worker process for the recovery tests: runs (or resumes) one counting job, then exits.

Usage: python -m tests.engine_jobs.worker DATABASE_URL HOME ARGS   (start a run and wait)
       python -m tests.engine_jobs.worker DATABASE_URL HOME --resume RUN_ID
Exit codes: 0 the run completed, 3 the run was interrupted by SIGTERM/SIGINT, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from koppel.engine import Engine, RunInterrupted
from tests.engine_jobs.counting import CountingJob

EXECUTOR_ID = os.environ.get("KOPPEL_TEST_EXECUTOR_ID", "worker-1")


async def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)  # the engine's and DBOS's warnings, for tests
    database_url, home = argv[0], Path(argv[1])
    # A stable id: a worker started again resumes what the killed one left (no takeover here).
    engine = Engine(database_url=database_url, home=home, poll_seconds=0.1, executor_id=EXECUTOR_ID)
    engine.register("counting", CountingJob)
    await engine.start()
    try:
        if argv[2] == "--resume":
            summary = await engine.wait(argv[3])
        else:
            summary = await engine.run_now("counting", argv[2])
    except RunInterrupted:
        print("interrupted", flush=True)
        return 3
    print(summary.status, summary.batches, flush=True)
    await engine.shutdown()
    return 0 if summary.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
