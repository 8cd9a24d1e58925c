"""`python -m bench` (`make bench`): the benchmarks; `--quick` for a fast look.

python -m bench                        # everything, full (see docs/performance.md for time)
python -m bench products --quick       # 2,000 products at latency 0 and 20 ms
python -m bench products --sizes 10000 --latencies 50 --setting page_size=500
python -m bench orders --quick         # also: stock, mapping
python -m bench idle                   # koppel sync with nothing to do, as a process
python -m bench engine                 # the engine alone: pick-up, end, shutdown of a no-op job
python -m bench store                  # the store side of a products batch: claim and record
python -m bench sandbox                # the AccountView sandbox's posts alone, in process
python -m bench web                    # the web app's pages over 1,000,000 outcomes (not in all)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.engine import format_engine, run_engine
from bench.idle import format_idle, run_idle
from bench.mapping import format_mapping, run_mapping
from bench.orders import order_scenarios
from bench.products import product_scenarios
from bench.report import format_result
from bench.sandbox_posts import format_sandbox_posts, run_sandbox_posts
from bench.scenario import Scenario, run_scenario
from bench.stock import stock_scenarios
from bench.store import format_store, run_store
from bench.web import format_web, run_web

SUITES = (
    "products",
    "orders",
    "stock",
    "mapping",
    "web",
    "idle",
    "engine",
    "store",
    "sandbox",
    "all",
)


def _setting(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: write a setting as name=value")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("suite", nargs="?", choices=SUITES, default="all")
    parser.add_argument("--quick", action="store_true", help="small and fast: a first look")
    parser.add_argument("--sizes", type=int, nargs="+", help="catalogue sizes (products)")
    parser.add_argument("--latencies", type=float, nargs="+", help="sandbox latencies in ms")
    parser.add_argument("--concurrency", type=int, help="requests in flight per connection")
    parser.add_argument(
        "--setting", type=_setting, action="append", default=[], help="flow setting name=value"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the sync process here")
    parser.add_argument("--json", type=Path, help="append the results to this JSON-lines file")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=("sqlite", "postgresql"),
        default=["sqlite", "postgresql"],
        help="stores the web suite fills and measures",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    scenarios: list[Scenario] = []
    if args.suite in ("products", "all"):
        scenarios += product_scenarios(
            quick=args.quick,
            sizes=args.sizes,
            latencies_ms=args.latencies,
            settings=dict(args.setting),
            concurrency=args.concurrency,
            trace_memory=args.tracemalloc,
            profile_to=args.profile,
        )
    if args.suite in ("orders", "all"):
        scenarios += order_scenarios(
            quick=args.quick,
            sizes=args.sizes,
            latencies_ms=args.latencies,
            settings=dict(args.setting),
            profile_to=args.profile,
        )
    if args.suite in ("stock", "all"):
        scenarios += stock_scenarios(
            quick=args.quick, sizes=args.sizes, latencies_ms=args.latencies
        )
    for scenario in scenarios:
        result = run_scenario(scenario)
        print(format_result(result), flush=True)
        results.append(result.to_json())
    if args.suite in ("mapping", "all"):
        mapping = run_mapping(quick=args.quick, sizes=args.sizes)
        print(format_mapping(mapping), flush=True)
        results.append({"mapping": mapping})
    if args.suite == "engine":
        engine = run_engine()
        print(format_engine(engine), flush=True)
        results.append({"engine": asdict(engine)})
    if args.suite == "store":
        store = run_store()
        print(format_store(store), flush=True)
        results.append({"store": [asdict(figures) for figures in store]})
    if args.suite == "sandbox":
        posts = run_sandbox_posts()
        print(format_sandbox_posts(posts), flush=True)
        results.append({"sandbox": [asdict(kind) for kind in posts]})
    if args.suite == "idle":
        idle = run_idle()
        print(format_idle(idle), flush=True)
        results.append({"idle": asdict(idle)})
    if args.suite == "web":
        web = run_web(quick=args.quick, backends=tuple(args.backends))
        print(format_web(web), flush=True)
        results.append({"web": [asdict(backend) for backend in web]})
    if args.json is not None:
        with args.json.open("a", encoding="utf-8") as out:
            for result_json in results:
                out.write(json.dumps(result_json) + "\n")
    print(f"bench done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
