"""Shared fixtures. Each area keeps its fixtures in its own tests/fixtures_*.py module."""

pytest_plugins = ["tests.fixtures_store"]
