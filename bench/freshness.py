"""`python -m bench.freshness` (`make bench-freshness`): how long a change takes to arrive, for
docs/performance.md ("Freshness").

Both sandboxes are served by this process over real HTTP, each with 50 ms of latency on every
API call; Koppel runs as its users run it, in processes of its own (`koppel sync`, `koppel serve`,
`koppel worker` from this virtual environment, on a temporary KOPPEL_HOME).

1. Webhooks, Parts Pim -> AccountView: the products flow without a schedule, synced once, then
   `koppel serve` with KOPPEL_WEB_PUBLIC_URL set subscribes the connection. One product at a
   time gets a new name in Parts Pim; measured from the moment the change is stored (the
   sandbox's webhook goes out then) until the article in AccountView has that name.
2. Short polling, AccountView -> Parts Pim: the articles flow on a 5 s schedule under
   `koppel worker`. First a quiet spell: the polls that find nothing and their AccountView calls.
   Then one article at a time gets a new description in AccountView, measured until the
   product in Parts Pim has it.

The end of each change is seen by reading the sandbox's own data every 10 ms (no API call, so
it costs the platform nothing). Printed: p50, p95 and the slowest change of each, and the calls
per empty poll.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from koppel.sandbox.common import FaultConfig
from koppel.services.demo import DemoSandboxes, running_sandboxes

KOPPEL = str(Path(sys.executable).parent / "koppel")
LATENCY_MS = 50.0
SHORT_POLL = "5s"
WEBHOOK_TARGETS_S = (2.0, 5.0)
"""p50 and p95 the issue asks of a change through webhooks."""
_WAIT_S = 120.0


@dataclass(frozen=True)
class Figures:
    """Seconds per change, in the order they were made."""

    name: str
    seconds: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.seconds)
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
        return ordered[index]

    def line(self) -> str:
        return (
            f"  {self.name:<40} {len(self.seconds):>3} changes   p50 "
            f"{statistics.median(self.seconds):5.2f} s   p95 {self.percentile(0.95):5.2f} s   "
            f"slowest {max(self.seconds):5.2f} s"
        )


class Koppel:
    """The `koppel` command on one home; `start` runs a long-lived one (serve, worker)."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.env = {**os.environ, "KOPPEL_HOME": str(home), **env}
        for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
            self.env.pop(name, None)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home.parent / "koppel.log"

    def run(self, *args: str) -> None:
        """Run a command to its end; exit code 1 (some records failed) is a result, not a
        broken bench."""
        done = subprocess.run([KOPPEL, *args], env=self.env, capture_output=True, check=False)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"koppel {' '.join(args)}: {done.stdout!r} {done.stderr!r}")

    def start(self, *args: str, **env: str) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [KOPPEL, *args], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)
        self.process = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {_WAIT_S:g} s for {what}")
        time.sleep(0.01)


def _write(path: Path, sandboxes: DemoSandboxes, flows: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(sandboxes.integration(flows), sort_keys=False))
    return path


def _webhooks(sandboxes: DemoSandboxes, home: Path, changes: int) -> Figures:
    flows = {"products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"}}
    file = _write(home.parent / "webhooks.yaml", sandboxes, flows)
    koppel = Koppel(home)
    koppel.run("config", "apply", str(file))
    koppel.run("sync", "--config", str(file), "--flow", "products")
    port = _free_port()
    pim = sandboxes.partspim
    koppel.start("serve", "--port", str(port), KOPPEL_WEB_PUBLIC_URL=f"http://127.0.0.1:{port}")
    try:
        _wait(lambda: pim.store.webhooks(), "koppel serve to subscribe to Parts Pim's webhooks")
        simple = [p for p in pim.store.all("products") if p["type"] == "simple"]
        chosen = random.Random(7).sample(simple, min(changes, len(simple)))
        seconds: list[float] = []
        for number, product in enumerate(chosen):
            name = f"Vers {number} {product['id']}"
            pim.store.update("products", product["id"], {"name": name})
            started = time.perf_counter()

            def arrived(sku: str = product["sku"], name: str = name) -> bool:
                rows = sandboxes.accountview.rows("ARTICLE", ART_CODE=sku)
                return bool(rows) and rows[0]["ART_DESC1"] == name

            _wait(arrived, f"product {product['sku']} in AccountView")
            seconds.append(time.perf_counter() - started)
            time.sleep(random.Random(number).uniform(0.1, 0.5))
    finally:
        koppel.stop()
    for hook in pim.store.webhooks():  # nobody receives them any more
        pim.store.delete_webhook(hook["id"])
    return Figures("webhooks, Parts Pim -> AccountView", seconds)


def _empty_polls(sandboxes: DemoSandboxes, spell_s: float) -> tuple[int, int]:
    """AccountView calls in a spell without changes, and the polls among them (each poll reads
    the articles changed since the last one: one GET AK1)."""
    log = sandboxes.accountview.faults.log
    log.clear()
    time.sleep(spell_s)
    calls = log.counts()
    return sum(calls.values()), calls.get("GET accountviewdata AK1", 0)


def _polling(sandboxes: DemoSandboxes, home: Path, changes: int) -> tuple[Figures, str]:
    flows = {
        "articles": {
            "from": "av",
            "to": "pim",
            "entity": "products",
            "schedule": SHORT_POLL,
            # Clocks of one machine: the cursor needs no margin, so a poll after a change
            # reads nothing again (a margin makes the polls within it read the change again).
            "settings": {"cursor_margin_seconds": 0},
        }
    }
    file = _write(home.parent / "polling.yaml", sandboxes, flows)
    # Articles made in AccountView: those that came from Parts Pim are not written back.
    codes = [f"7{number:05d}" for number in range(changes)]
    sandboxes.accountview.write(
        "ARTICLE", [{"ART_CODE": c, "ART_DESC1": f"Artikel {c}", "PX_SELL": 1.5} for c in codes]
    )
    koppel = Koppel(home)
    koppel.run("config", "apply", str(file))
    koppel.run("sync", "--config", str(file), "--flow", "articles")
    koppel.start("worker")
    try:
        time.sleep(7.0)  # the worker is up and has polled once
        spell_s = 30.0
        calls, polls = _empty_polls(sandboxes, spell_s)
        quiet = (
            f"  empty polls over {spell_s:g} s: {polls} polls, {calls} AccountView calls "
            f"({calls / max(1, polls):.2f} per poll)"
        )
        pim = sandboxes.partspim.store
        ids = {p["sku"]: p["id"] for p in pim.all("products")}
        seconds: list[float] = []
        for number, code in enumerate(codes):
            description = f"Gepeild {number}"
            sandboxes.accountview.edit("ARTICLE", code, {"ART_DESC1": description})
            started = time.perf_counter()

            def arrived(product_id: int = ids[code], name: str = description) -> bool:
                return bool(pim.get("products", product_id)["name"] == name)

            _wait(arrived, f"article {code} in Parts Pim")
            seconds.append(time.perf_counter() - started)
            # At a random point of the schedule's interval: a change right after a poll waits
            # the longest, one right before it the shortest.
            time.sleep(random.Random(number).uniform(0.1, 5.0))
    finally:
        koppel.stop()
    return Figures(f"short polling ({SHORT_POLL}), AccountView -> Parts Pim", seconds), quiet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__)
    parser.add_argument("--products", type=int, default=200, help="Parts Pim catalogue size")
    parser.add_argument("--changes", type=int, default=40, help="changes measured per way")
    args = parser.parse_args(argv)
    faults = FaultConfig(latency_ms=LATENCY_MS)
    with (
        tempfile.TemporaryDirectory() as directory,
        running_sandboxes(
            args.products, seed=3, partspim_faults=faults, accountview_faults=faults
        ) as sandboxes,
    ):
        home = Path(directory) / "koppel"
        print(f"== freshness: {args.products} products, sandbox latency {LATENCY_MS:g} ms")
        hooks = _webhooks(sandboxes, home, args.changes)
        print(hooks.line())
        target_p50, target_p95 = WEBHOOK_TARGETS_S
        met = hooks.percentile(0.5) < target_p50 and hooks.percentile(0.95) < target_p95
        verdict = "met" if met else "MISSED"
        print(f"  targets p50 < {target_p50:g} s, p95 < {target_p95:g} s: {verdict}")
        polled, quiet = _polling(sandboxes, home, args.changes)
        print(quiet)
        print(polled.line())


if __name__ == "__main__":
    main()
