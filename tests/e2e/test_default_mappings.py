"""Every default mapping passes validation and carries its sandbox's data to the canonical model.

Each flow Koppel has is set up on generated sandbox data; building its runtime validates both of
its mappings against the connectors' schemas (a FlowSetupError lists every problem). Then every
record of the flow's source entity is mapped to the canonical model and validated by it, and the
canonical records of the entities that need no lookups in the target are mapped on to the target.
"""

from __future__ import annotations

from typing import Any

from koppel.flows.customers import compile_get, partspim_code_tables
from koppel.flows.mappings import CANONICAL_MODELS, RESOLVED
from koppel.flows.pipeline import Item, to_canonical, to_target
from koppel.flows.registry import FLOW_TYPES
from koppel.flows.runtime import FlowRuntime
from koppel.services.demo import DEMO_SETTINGS
from tests.e2e.conftest import Platform

CONNECTIONS = {"partspim": "pim", "accountview": "av"}
OTHER = {"pim": "av", "av": "pim"}
# What the flows look up in the target before the send mapping runs (`resolved.*`), for the
# entities whose send mapping needs nothing else.
RUN_TIME_TABLES = {"customers", "orders"}
RESOLVED_BY_FLOW = {
    "products": {},
    "categories": {"group_code": "GRP01"},
    "customers": {"search_code": "KLANT", "collective_account": "1210"},
}


async def test_every_default_mapping_validates_and_maps_sandbox_data(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(150, seed=21, accountview_articles=150)
    flows = {
        f"{application}-{entity}": {
            "from": CONNECTIONS[application],
            "to": OTHER[CONNECTIONS[application]],
            "entity": entity,
            "schedule": "manual",
        }
        for application, entity in FLOW_TYPES
    }
    # The payment term and method tables a user fills in (empty, every relation would fail).
    platform.apply(platform.sandboxes.integration(flows, settings=DEMO_SETTINGS))
    mapped: dict[str, int] = {}
    for name in flows:
        runtime = FlowRuntime.open(platform.store, platform.flow(name).id)  # validates
        try:
            entity = runtime.flow.entity
            records: list[dict[str, Any]] = []
            async for page in runtime.source.read(runtime.source_entity(), page_size=500):
                records.extend(page)
            assert records, f"{name}: the sandbox has no {entity} to map"
            model = CANONICAL_MODELS[entity]
            get = runtime.mappings.get
            if runtime.source_connection.application == "partspim" and entity in RUN_TIME_TABLES:
                # These mappings turn Parts Pim's payment term and method ids into codes with
                # tables the flow reads from Parts Pim when it starts.
                tables = await partspim_code_tables(runtime)
                get = compile_get(runtime, runtime.mappings, entity, tables)
            items = [Item(str(i), f"{name} record {i}", r) for i, r in enumerate(records)]
            for item in items:
                canonical = to_canonical(item, get, model)
                assert canonical is not None, item.reason
                if entity in RESOLVED_BY_FLOW:
                    resolved = {**canonical, RESOLVED: RESOLVED_BY_FLOW[entity]}
                    assert to_target(item, runtime.mappings.send, resolved), item.reason
            mapped[name] = len(items)
        finally:
            await runtime.aclose()
    assert set(mapped) == set(flows)
