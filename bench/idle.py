"""The fixed cost of a run: `koppel sync` with nothing to do, as a user starts it.

Both sandboxes run in processes of their own (latency 0, a small catalogue); a first
`koppel sync --flow products` syncs everything, then the same command runs again with nothing
changed, each time as a fresh process with the same home, and its wall and CPU time are
measured from the outside. `koppel sync --help` gives the floor of any command: the interpreter,
the command line and the settings; it imports neither the store nor the engine. What a rerun
costs above that is their imports, the store's opening, the engine (start, queue pick-up,
progress, stop) and the three empty reads.

The processes keep compiled bytecode (in the bench's temporary directory), as an installed
Koppel does: where PYTHONDONTWRITEBYTECODE is set (as on the development machine), every
process would otherwise compile Koppel's modules from source again, a quarter of a second of
CPU that no user pays. The first sync fills that cache.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.products import PRODUCTS_FLOW
from bench.sandboxes import SandboxProcess
from koppel.services.demo import integration_document

__all__ = ["IdleResult", "format_idle", "run_idle"]

_NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"


@dataclass(frozen=True)
class IdleResult:
    products: int
    first_seconds: float
    import_seconds: list[tuple[float, float]]
    """`koppel sync --help` (wall, CPU): interpreter start, the command line, the settings."""
    rerun_seconds: list[tuple[float, float]]
    """`koppel sync` with nothing changed (wall, CPU) of the whole process."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of the command (CPU varies less on a loaded machine)."""
    started, cpu_started = time.perf_counter(), _children_cpu()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds, cpu_seconds = time.perf_counter() - started, _children_cpu() - cpu_started
    if finished.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {finished.returncode}:\n{finished.stdout}{finished.stderr}"
        )
    return seconds, cpu_seconds


def run_idle(*, products: int = 200, reruns: int = 5) -> IdleResult:
    koppel = [str(Path(sys.executable).parent / "koppel")]
    with (
        SandboxProcess("partspim", products=products, seed=7) as pim,
        SandboxProcess("accountview", seed=7) as av,
        tempfile.TemporaryDirectory(prefix="koppel-idle-") as home,
    ):
        document = integration_document(
            pim.credentials, av.credentials, {"products": PRODUCTS_FLOW}, tenant="bench"
        )
        config = Path(home) / "integration.yaml"
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        env = {name: value for name, value in os.environ.items() if name != _NO_BYTECODE}
        env |= {
            "KOPPEL_HOME": str(Path(home) / "koppel"),
            "PYTHONPYCACHEPREFIX": str(Path(home) / "bytecode"),
        }
        sync = [*koppel, "sync", "--config", str(config), "--flow", "products"]
        first, _ = _timed(sync, env)
        imports = [_timed([*koppel, "sync", "--help"], env) for _ in range(3)]
        reruns_s = [_timed(sync, env) for _ in range(reruns)]
    return IdleResult(products, first, imports, reruns_s)


def format_idle(result: IdleResult) -> str:
    floor = [statistics.median(t[i] for t in result.import_seconds) for i in (0, 1)]
    rerun = [statistics.median(t[i] for t in result.rerun_seconds) for i in (0, 1)]
    every = ", ".join(f"{wall:.2f}" for wall, _ in result.rerun_seconds)
    return "\n".join(
        [
            f"== idle: koppel sync --flow products with nothing to do ({result.products} products)",
            f"  first sync   {result.first_seconds:.2f} s",
            f"  koppel sync --help (interpreter, command line): median {floor[0]:.2f} s wall, "
            f"{floor[1]:.2f} s CPU",
            f"  rerun        median {rerun[0]:.2f} s wall ({every}), {rerun[1]:.2f} s CPU; "
            f"above the help: {rerun[0] - floor[0]:.2f} s wall, {rerun[1] - floor[1]:.2f} s CPU",
        ]
    )
