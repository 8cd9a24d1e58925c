"""Printing scenario results: one block per scenario, figures a reader can compare at a glance."""

from __future__ import annotations

from typing import Any

from bench.scenario import BaselineResult, RunResult, ScenarioResult

__all__ = ["format_result"]


def format_result(result: ScenarioResult) -> str:
    scenario = result.scenario
    first, *rest = result.runs
    bound, bound_by = first.bound(scenario.latency_ms, scenario.concurrency)
    ratio = f"{first.records_per_s / bound:.0%}" if bound else "n/a"
    lines = [
        f"== {scenario.name}: {scenario.products:,} products, latency {scenario.latency_ms:g} ms, "
        f"concurrency {scenario.concurrency}, settings {_settings(scenario.settings)}",
        f"  first run    {first.records:,} records in {first.seconds:.1f} s = "
        f"{first.records_per_s:,.0f} records/s   ({_counts(first.counts)})",
        f"  platform CPU {first.cpu_seconds:.1f} s = "
        f"{1000 * first.cpu_seconds / max(1, first.records):.2f} ms per record (sync process)",
        f"  API calls    {first.total_calls():,} = {first.calls_per_record():.4f} per record",
    ]
    for sandbox, kinds in first.calls.items():
        for kind, number in sorted(kinds.items(), key=lambda kv: -kv[1]):
            per = number / first.records if first.records else 0.0
            lines.append(f"    {sandbox:<12} {kind:<36} {number:>7,}  {per:.4f}/record")
    for reason, number in first.failures.items():
        lines.append(f"  failed {number:>6,}: {reason}")
    service = ", ".join(f"{n} {ms:.2f} ms" for n, ms in first.service_ms.items())
    lines.append(f"  service time {service} (sandbox CPU per call)")
    bound_text = f"{bound:,.0f} records/s ({bound_by})" if bound else bound_by
    lines.append(f"  bound        {bound_text}; achieved {ratio} of it")
    cpu_bound = first.records / first.cpu_seconds if first.cpu_seconds else None
    if cpu_bound:
        lines.append(
            f"  CPU bound    {cpu_bound:,.0f} records/s (1 / platform CPU per record, one process)"
        )
        lower = min(b for b in (bound, cpu_bound) if b)
        lines.append(
            f"  overlap      {first.records_per_s / lower:.2f} x min(API bound, CPU bound) "
            f"= {first.records_per_s:,.0f} / {lower:,.0f} records/s"
        )
    if result.baseline is not None:
        lines += _baseline_lines(result.baseline, first, scenario.latency_ms, scenario.concurrency)
    memory = (
        f"  memory       RSS baseline {result.rss_baseline_mb:.0f} MB, "
        f"peak {first.rss_peak_mb:.0f} MB (+{first.rss_peak_mb - result.rss_baseline_mb:.0f} MB)"
    )
    if first.tracemalloc_peak_mb is not None:
        memory += f", tracemalloc peak {first.tracemalloc_peak_mb:.1f} MB"
    lines.append(memory)
    for number, run in enumerate(rest, start=2):
        lines.append(
            f"  run {number} (nothing changed): {run.total_calls()} API calls, "
            f"{run.seconds:.2f} s ({_counts(run.counts) or 'no records'}; "
            f"{_calls(run.calls)})"
        )
    pickups = [
        f"{1000 * r.pickup_seconds:.0f}" for r in result.runs if r.pickup_seconds is not None
    ]
    if pickups:
        lines.append(f"  pick-up      {', '.join(pickups)} ms (submit to the job's start, per run)")
    return "\n".join(lines)


def _baseline_lines(
    baseline: BaselineResult, koppel: RunResult, latency_ms: float, concurrency: int
) -> list[str]:
    """The per-record connector beside Koppel's first run, on the same catalogue."""
    figures = baseline.figures
    per_record = baseline.calls_per_record()
    lines = [
        f"  baseline     per-record connector: {figures.records:,} records in "
        f"{figures.seconds:.1f} s = {baseline.records_per_s:,.0f} records/s, "
        f"{per_record:.3f} API calls per record, CPU "
        f"{1000 * figures.cpu_seconds / max(1, figures.records):.2f} ms per record",
    ]
    if latency_ms > 0 and figures.records:
        # Its own bound, as Koppel's: concurrency / latency / its calls per record, per connection.
        own = min(
            concurrency / (latency_ms / 1000) / (sum(kinds.values()) / figures.records)
            for kinds in baseline.calls.values()
            if sum(kinds.values())
        )
        lines.append(
            f"    its API bound {own:,.0f} records/s; achieved {baseline.records_per_s / own:.0%}"
        )
    if figures.failed:
        lines.append(f"    failed {figures.failed:,}: {figures.first_failure}")
    if baseline.records_per_s and per_record:
        lines.append(
            f"  Koppel / baseline: {koppel.records_per_s / baseline.records_per_s:.1f} x the "
            f"records/s, {koppel.calls_per_record() / per_record:.4f} x the calls per record"
        )
    return lines


def _settings(settings: dict[str, Any]) -> str:
    """Flow settings in short; lookup tables by name only."""
    shown = [f"{k}={v}" for k, v in settings.items() if k != "tables"]
    if "tables" in settings:
        shown.append("tables " + ", ".join(settings["tables"]))
    return "; ".join(shown) or "default"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))


def _calls(calls: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{kind} {n}" for kinds in calls.values() for kind, n in sorted(kinds.items()))
