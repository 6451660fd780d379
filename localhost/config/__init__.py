"""Configuration: grammar, model and loader (see ``loader.load``)."""

from localhost.config.diagnostics import ConfigError, ConfigWarning
from localhost.config.loader import load, loads
from localhost.config.model import Config, Location, ServerBlock, Timeouts

__all__ = [
    "Config",
    "ConfigError",
    "ConfigWarning",
    "Location",
    "ServerBlock",
    "Timeouts",
    "load",
    "loads",
]
