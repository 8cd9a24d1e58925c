"""The conformance suite every connector runs against its sandbox, over real HTTP.

Written once (as singer-sdk's test factories are) so that each connector is held to the same
promises: it reads every entity completely, creates and updates by key, pages through 10,000+
rows while they change without missing or repeating one, isolates a bad record, batches lookups,
and still returns complete, correct results when a third of the requests fail.

Use: in a connector's test module, `TestConformance = conformance_suite(MyHarness())`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from koppel.connectors.base import Connector, Record
from koppel.connectors.errors import AuthenticationError, RecordValidationError
from koppel.sandbox.common import FaultConfig, FaultMiddleware, SandboxServer


@dataclass
class EntityCase:
    """How to exercise one writable entity of a connector."""

    entity: str
    new_record: Callable[[int], Record]
    """A valid record that is not in the sandbox yet; `i` makes it unique."""
    change: Callable[[Record], Record]
    """What to write to update a record as read back: must keep its key, change `changed_field`."""
    changed_field: str
    invalid_record: Callable[[int], Record] | None = None
    invalid_field: str | None = None
    """The field a RecordValidationError for `invalid_record` must name."""


class Sandbox(Protocol):
    faults: FaultMiddleware

    def asgi_app(self) -> Any: ...


@dataclass
class ConnectorHarness:
    """What the suite needs to know about one connector; each connector's tests fill one in."""

    application: str
    make_sandbox: Callable[[int], Sandbox]
    """A sandbox holding about `n` generated products (and the related data)."""
    make_connector: Callable[[Sandbox, str], Connector]
    """A connector for the sandbox at base URL `url`, with fast retry settings for tests."""
    make_bad_connector: Callable[[Sandbox, str], Connector]
    """A connector whose credentials the sandbox refuses."""
    paging_entity: str
    """An entity that holds one row per generated product."""
    row_ids: Callable[[Sandbox, str], set[str]]
    """The ids of every row of an entity, read from the sandbox's own state (not over HTTP)."""
    account_name: Callable[[Sandbox], str]
    """The name of the account (company) the connector's credentials reach: the connection
    test must say it, so a user sees which account they connected."""
    cases: list[EntityCase] = field(default_factory=list)
    large_rows: int = 10_500
    past_last_page: dict[str, Callable[[Sandbox], None]] = field(
        default_factory=lambda: {"as served": lambda sandbox: None}
    )
    """Each answer the sandbox can give to the page after a full last page, by name, with how to
    switch the sandbox to it; the first is the sandbox's default (restored after the test)."""


@contextmanager
def served(sandbox: Sandbox) -> Iterator[str]:
    with SandboxServer(sandbox.asgi_app()) as server:
        yield server.url


async def read_all(connector: Connector, entity: str, page_size: int | None = None) -> list[Record]:
    rows: list[Record] = []
    async for page in connector.read(entity, page_size=page_size):
        rows.extend(page)
    return rows


def conformance_suite(harness: ConnectorHarness) -> type:
    """A pytest test class holding the whole suite for one connector."""

    def id_of(connector: Connector, entity: str, record: Record) -> str:
        return str(record[connector.entities[entity].id_field])

    def key_of(connector: Connector, entity: str, record: Record) -> str:
        return str(record[connector.entities[entity].key_field])

    class ConformanceSuite:
        @pytest.fixture(scope="class")
        @staticmethod
        def small() -> Iterator[tuple[Sandbox, str]]:
            sandbox = harness.make_sandbox(60)
            with served(sandbox) as url:
                yield sandbox, url

        @pytest.fixture(scope="class")
        @staticmethod
        def large() -> Iterator[tuple[Sandbox, str]]:
            sandbox = harness.make_sandbox(harness.large_rows)
            with served(sandbox) as url:
                yield sandbox, url

        async def test_connection_check(self, small: tuple[Sandbox, str]) -> None:
            sandbox, url = small
            connector = harness.make_connector(sandbox, url)
            try:
                text = await connector.check()
            finally:
                await connector.aclose()
            assert harness.account_name(sandbox) in text
            assert "?" not in text, text

        async def test_refused_credentials_say_what_to_do(self, small: tuple[Sandbox, str]) -> None:
            sandbox, url = small
            connector = harness.make_bad_connector(sandbox, url)
            try:
                with pytest.raises(AuthenticationError) as info:
                    await connector.check()
            finally:
                await connector.aclose()
            assert "credentials" in str(info.value).lower()

        async def test_reads_every_entity_completely(self, small: tuple[Sandbox, str]) -> None:
            sandbox, url = small
            connector = harness.make_connector(sandbox, url)
            try:
                for entity, spec in connector.entities.items():
                    rows = await read_all(connector, entity, page_size=7)
                    ids = [id_of(connector, entity, row) for row in rows]
                    assert len(ids) == len(set(ids)), f"{entity}: a row came twice"
                    assert set(ids) == harness.row_ids(sandbox, entity), entity
                    for row in rows:
                        assert spec.id_field in row, f"{entity}: row without {spec.id_field}"
            finally:
                await connector.aclose()

        async def test_read_resumes_after_a_record(self, small: tuple[Sandbox, str]) -> None:
            sandbox, url = small
            entity = harness.paging_entity
            connector = harness.make_connector(sandbox, url)
            try:
                everything = [
                    id_of(connector, entity, r) for r in await read_all(connector, entity)
                ]
                pages = connector.read(entity, page_size=10)
                first = await anext(pages)
                await pages.aclose()
                resumed: list[str] = []
                after = id_of(connector, entity, first[-1])
                async for page in connector.read(entity, after=after, page_size=10):
                    resumed.extend(id_of(connector, entity, r) for r in page)
            finally:
                await connector.aclose()
            head = [id_of(connector, entity, r) for r in first]
            assert head + resumed == everything

        async def test_paging_ends_whatever_follows_a_full_last_page(
            self, small: tuple[Sandbox, str]
        ) -> None:
            sandbox, url = small
            entity = harness.paging_entity
            expected = harness.row_ids(sandbox, entity)
            count = len(expected)
            page_size = next(p for p in range(max(1, count // 3), 0, -1) if count % p == 0)
            answers = list(harness.past_last_page.items())
            try:
                for answer, switch in answers:
                    switch(sandbox)
                    connector = harness.make_connector(sandbox, url)
                    before = len(sandbox.faults.log.entries())
                    try:
                        rows = await read_all(connector, entity, page_size=page_size)
                    finally:
                        await connector.aclose()
                    calls = len(sandbox.faults.log.entries()) - before
                    ids = [id_of(connector, entity, r) for r in rows]
                    assert len(ids) == len(set(ids)), f"{answer}: a row came twice"
                    assert set(ids) == expected, f"{answer}: the read is incomplete"
                    assert calls <= count // page_size + 1, f"{answer}: {calls} calls"
            finally:
                answers[0][1](sandbox)

        async def test_creates_then_updates_by_key(self, small: tuple[Sandbox, str]) -> None:
            sandbox, url = small
            connector = harness.make_connector(sandbox, url)
            try:
                for case in harness.cases:
                    record = case.new_record(1)
                    [created] = await connector.write(case.entity, [record])
                    assert created.ok, created.error
                    assert created.created
                    key = created.key
                    [found] = await connector.lookup(
                        case.entity, connector.entities[case.entity].key_field, [key]
                    )
                    assert key_of(connector, case.entity, found) == key
                    changed = case.change(found)
                    [updated] = await connector.write(case.entity, [changed])
                    assert updated.ok, updated.error
                    assert not updated.created, f"{case.entity}: an update created a record"
                    assert updated.target_id == created.target_id
                    [again] = await connector.lookup(
                        case.entity, connector.entities[case.entity].key_field, [key]
                    )
                    assert again[case.changed_field] == changed[case.changed_field]
            finally:
                await connector.aclose()

        async def test_bad_record_fails_alone_with_a_clear_reason(
            self, small: tuple[Sandbox, str]
        ) -> None:
            sandbox, url = small
            connector = harness.make_connector(sandbox, url)
            try:
                for case in harness.cases:
                    if case.invalid_record is None:
                        continue
                    batch = [case.new_record(10), case.invalid_record(11), case.new_record(12)]
                    results = await connector.write(case.entity, batch)
                    assert [r.ok for r in results] == [True, False, True], case.entity
                    error = results[1].error
                    assert isinstance(error, RecordValidationError)
                    assert error.field.lower() == (case.invalid_field or "").lower()
                    assert error.field in str(error)
                    keys = [results[0].key, results[2].key]
                    spec = connector.entities[case.entity]
                    found = await connector.lookup(case.entity, spec.key_field, keys)
                    assert sorted(key_of(connector, case.entity, r) for r in found) == sorted(keys)
            finally:
                await connector.aclose()

        async def test_lookup_is_batched(self, small: tuple[Sandbox, str]) -> None:
            sandbox, url = small
            connector = harness.make_connector(sandbox, url)
            entity = harness.paging_entity
            spec = connector.entities[entity]
            try:
                rows = await read_all(connector, entity)
                keys = sorted({key_of(connector, entity, r) for r in rows})[:40]
                before = len(sandbox.faults.log.entries())
                found = await connector.lookup(entity, spec.key_field, [*keys, "999999999999"])
                calls = len(sandbox.faults.log.entries()) - before
            finally:
                await connector.aclose()
            assert sorted(key_of(connector, entity, r) for r in found) == keys
            assert calls <= 2, f"looking up 41 keys took {calls} calls"

        async def test_paging_while_rows_change(self, large: tuple[Sandbox, str]) -> None:
            sandbox, url = large
            entity = harness.paging_entity
            before = harness.row_ids(sandbox, entity)
            assert len(before) >= 10_000
            reader = harness.make_connector(sandbox, url)
            writer = harness.make_connector(sandbox, url)
            case = next(c for c in harness.cases if c.entity == entity)
            seen: list[str] = []
            created: list[str] = []
            try:
                page_number = 0
                async for page in reader.read(entity, page_size=500):
                    seen.extend(id_of(reader, entity, r) for r in page)
                    page_number += 1
                    # Change rows already read and rows still ahead, and add new ones.
                    changes = [case.change(page[0]), case.change(page[-1])]
                    results = await writer.write(entity, changes)
                    assert all(r.ok for r in results)
                    [new] = await writer.write(entity, [case.new_record(1000 + page_number)])
                    assert new.ok, new.error
                    created.append(new.target_id)
            finally:
                await reader.aclose()
                await writer.aclose()
            assert len(seen) == len(set(seen)), "a row was read twice"
            missing = before - set(seen)
            assert not missing, f"{len(missing)} rows were never read"
            assert set(seen) <= before | set(created)

        async def test_complete_results_under_faults(self, small: tuple[Sandbox, str]) -> None:
            sandbox, url = small
            entity = harness.paging_entity
            case = next(c for c in harness.cases if c.entity == entity)
            expected = harness.row_ids(sandbox, entity)
            connector = harness.make_connector(sandbox, url)
            faults = FaultConfig(
                error_rate=0.1, rate_429=0.1, drop_rate=0.1, retry_after_s=0.01, seed=42
            )
            sandbox.faults.configure(faults)
            try:
                rows = await read_all(connector, entity, page_size=9)
                new_records = [case.new_record(2000 + i) for i in range(15)]
                results = await asyncio.gather(*(connector.write(entity, [r]) for r in new_records))
            finally:
                sandbox.faults.configure(FaultConfig())
            try:
                ids = [id_of(connector, entity, r) for r in rows]
                assert len(ids) == len(set(ids))
                assert set(ids) == expected
                written = [result for [result] in results]
                assert all(r.ok for r in written), [r.error for r in written if not r.ok]
                after = harness.row_ids(sandbox, entity)
                assert len(after) == len(expected) + len(new_records), "a write was duplicated"
                keys = [w.key for w in written]
                found = await connector.lookup(entity, connector.entities[entity].key_field, keys)
                assert sorted(key_of(connector, entity, r) for r in found) == sorted(keys)
            finally:
                await connector.aclose()

    ConformanceSuite.__name__ = f"{harness.application.title()}Conformance"
    return ConformanceSuite


__all__ = ["ConnectorHarness", "EntityCase", "conformance_suite", "read_all"]
