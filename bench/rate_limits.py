"""`python -m bench.rate_limits` (`make bench-rate-limits`): a first sync under AccountView's
rate limits, for docs/performance.md ("Rate limits").

The products flow (categories, products, variants) and the customers flow run against in-process
sandboxes over real HTTP with the durable engine, once per fault setting: none; 429 on 80% of the
calls with `Retry-After: 1` (issue 9's probe); and a real rate limit of the sandbox (429 above 5
calls per second, `Retry-After: 0.2`). Printed per setting: records (outcomes), wall time,
records/s, AccountView calls answered and how many were 429, and records that failed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from koppel.config import apply_config, load_config
from koppel.engine.runner import FlowRunner
from koppel.sandbox.common import FaultConfig
from koppel.services.demo import running_sandboxes
from koppel.settings import Settings
from koppel.store import open_store

FLOWS = {
    "products": {"from": "pim", "to": "av", "entity": "products", "settings": {"page_size": 10}},
    "customers": {"from": "pim", "to": "av", "entity": "customers", "settings": {"page_size": 10}},
}
TABLES = {
    "payment_terms": {"DIR": "03", "14D": "01", "30D": "02"},
    "payment_methods": {
        "IDEAL": "IDEAL",
        "BANK": "BANK",
        "PIN": "PIN",
        "CREDIT": "CREDITCARD",
        "REMBOURS": "CONTANT",
    },
}
SETTINGS = {
    "none": FaultConfig(),
    "429 on 80%, Retry-After 1": FaultConfig(rate_429=0.8, retry_after_s=1, seed=6),
    "limit 5/s, Retry-After 0.2": FaultConfig(rate_limit_per_s=5, retry_after_s=0.2, seed=6),
}


async def _sync(products: int, faults: FaultConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home, running_sandboxes(products, seed=4) as sandboxes:
        settings = Settings(home=Path(home) / "koppel", secret_key=None)
        store = open_store(settings)
        try:
            document = sandboxes.integration(FLOWS, settings={"tables": TABLES})
            path = Path(home) / "integration.yaml"
            path.write_text(yaml.safe_dump(document, sort_keys=False))
            apply_config(store, load_config(path))
            [integration] = store.integrations.list()
            sandboxes.accountview.faults.configure(faults)
            sandboxes.accountview.faults.log.clear()
            records = failed = 0
            started = time.monotonic()
            async with FlowRunner(store, settings, handle_signals=False) as runner:
                for name in FLOWS:
                    flow = store.flows.get_by_name(integration.id, name)
                    assert flow is not None
                    summary = await runner.run(flow.id)
                    run = store.runs.get(summary.run_id)
                    assert run is not None and summary.status == "completed", summary.error
                    records += sum(run.counts.values())
                    failed += sum(n for kind, n in run.counts.items() if kind.endswith("failed"))
            seconds = time.monotonic() - started
            answers = sandboxes.accountview.faults.log.entries()
        finally:
            store.close()
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "calls": len(answers),
        "429s": sum(1 for a in answers if a.status == 429),
        "failed": failed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_limits", description=__doc__)
    parser.add_argument("--products", type=int, default=6, help="Parts Pim catalogue size")
    args = parser.parse_args(argv)
    print(
        f"{'AccountView faults':<28} {'records':>7} {'seconds':>8} {'records/s':>9} "
        f"{'calls':>6} {'429s':>5} {'failed':>6}"
    )
    for name, faults in SETTINGS.items():
        r = asyncio.run(_sync(args.products, faults))
        print(
            f"{name:<28} {r['records']:>7} {r['seconds']:>8.1f} {r['records_per_s']:>9.2f} "
            f"{r['calls']:>6} {r['429s']:>5} {r['failed']:>6}"
        )


if __name__ == "__main__":
    main()
