"""The command line's commands, one module per group; `koppel.cli` puts them on one Typer app.

common:   consoles, exit codes, turning expected errors into one or two plain lines
running:  running flows through the engine with progress bars, summaries and the worker loop
flows:    sync, worker, replay
activity: runs, log, dead-letters
mapping:  mapping show | validate | preview | versions | restore
setup:    config apply, connection test
demo:     the demo: both sandboxes, the flows, a summary
sandbox:  one sandbox on a port of its own
"""
