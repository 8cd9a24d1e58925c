"""The integration file: one YAML file describes an integration, and applying it sets up the store.

    config = load_config("acme.yaml")     # ConfigError names the file, the path and the fix
    integration = apply_config(store, config)

See docs/config.md for the format.
"""

from koppel.config.apply import apply_config
from koppel.config.loader import ConfigError, load_config, parse_config
from koppel.config.model import ConnectionConfig, FlowConfig, IntegrationConfig

__all__ = [
    "ConfigError",
    "ConnectionConfig",
    "FlowConfig",
    "IntegrationConfig",
    "apply_config",
    "load_config",
    "parse_config",
]
