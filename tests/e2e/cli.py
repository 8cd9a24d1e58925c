"""Driving the command line in the end-to-end tests: in-process (typer's CliRunner) or as a
worker process, against both sandboxes over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result
from typer.testing import CliRunner

from koppel.cli import app
from tests.e2e.conftest import Platform

PRODUCTS_FLOW = {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}
TOO_LONG_SKU = "12345678901234567"  # Parts Pim allows 20 digits, AccountView's ART_CODE 15


def koppel(*args: str, columns: int = 200) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})


@dataclass
class Setup:
    platform: Platform
    config: Path

    def write(self, document: dict[str, Any]) -> Path:
        self.config.write_text(yaml.safe_dump(document, sort_keys=False))
        return self.config

    def document(self, **flow: Any) -> dict[str, Any]:
        return self.platform.sandboxes.integration({"products": {**PRODUCTS_FLOW, **flow}})

    def articles(self) -> dict[str, dict[str, Any]]:
        return {r["ART_CODE"]: r for r in self.platform.sandboxes.accountview.rows("ARTICLE")}

    def add_product(self, sku: str, **fields: Any) -> dict[str, Any]:
        body = {"sku": sku, "name": f"Testartikel {sku}", "price_excl_vat": "9.95", **fields}
        return self.platform.sandboxes.partspim.store.create("products", body, over_api=False)


def sellable_skus(platform: Platform) -> set[str]:
    skus: set[str] = set()
    for product in platform.sandboxes.partspim.store.all("products"):
        variants = product.get("variants") or []
        if product["type"] == "configurable" and variants:
            skus.update(v["sku"] for v in variants)
        else:
            skus.add(product["sku"])
    return skus


class WorkerProcess:
    def __init__(self, home: Path) -> None:
        self.log = home.parent / "worker.log"
        env = {**os.environ, "KOPPEL_HOME": str(home), "COLUMNS": "200"}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "koppel"), "worker"],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def start_worker(home: Path) -> WorkerProcess:
    return WorkerProcess(home)


def wait_for(condition: Any, *, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds}s for {what}")
        time.sleep(0.2)
