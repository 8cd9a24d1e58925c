"""The use cases under both faces: the CLI's commands and the web app's routes call these.

One module per area: `setup` (applying an integration file, choosing the integration and its
flows), `checks` (what a run would find wrong in a file, before it is applied), `connections`
(testing one), `authorization` (authorising one again), `runs` (checking and running flows,
their reports),
`worker` (schedules with retention and a report per finished run), `activity` (runs and their
activity log), `dead_letters`, `mappings` (show, validate, preview, versions, restore) and `demo`
(the sandboxes and the demo's integration).

A service takes a store (scoped to a workspace when a web request calls it) and, where it runs
flows, a runner; it returns frozen dataclasses and raises Koppel's own errors
(`koppel.services.errors`, all under `koppel.errors.KoppelError` with a category). It knows
nothing of Typer, Rich or HTTP: each face renders the data and turns a category into its exit
code or HTTP status in one place. docs/architecture.md lists the areas and the categories.
"""
