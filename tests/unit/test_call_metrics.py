"""The per-process call figures count a call that got no answer too, once per attempt."""

from __future__ import annotations

import socket

import pytest

from koppel.connectors.base import ApiClient, ClientLimits, RetriableAPIError
from koppel.connectors.metrics import CALL_REGISTRY, NO_ANSWER


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sample(name: str, **labels: str) -> float:
    return CALL_REGISTRY.get_sample_value(name, labels) or 0.0


async def test_every_attempt_without_an_answer_is_a_no_answer_call() -> None:
    limits = ClientLimits(max_attempts=3, backoff_base_s=0.001, backoff_max_s=0.001)
    client = ApiClient(f"http://127.0.0.1:{closed_port()}", limits=limits, name="closed-port")
    before = sample("koppel_api_calls_total", connection="closed-port", status=NO_ANSWER)
    timed = sample("koppel_api_call_duration_seconds_count", connection="closed-port")
    async with client:
        with pytest.raises(RetriableAPIError, match="refused the connection"):
            await client.send("GET", "/anything", kind="GET anything")
    after = sample("koppel_api_calls_total", connection="closed-port", status=NO_ANSWER)
    assert after - before == 3
    assert sample("koppel_api_call_duration_seconds_count", connection="closed-port") - timed == 3
