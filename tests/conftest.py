"""Shared fixtures. Each area keeps its fixtures in its own tests/fixtures_*.py module."""

import os

# Rich fixes a console's width from COLUMNS when the console is made (koppel.commands.common makes
# them on import), and pytest-xdist's workers start with COLUMNS=80. The CLI tests pass COLUMNS
# per invocation instead, which a console made without it reads on every print.
os.environ.pop("COLUMNS", None)

pytest_plugins = ["tests.fixtures_notify", "tests.fixtures_store"]
