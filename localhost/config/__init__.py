"""Configuration: grammar, model and loader (see ``loader.load``)."""

from localhost.config.loader import ConfigError, load, loads
from localhost.config.model import Config, Location, ServerBlock, Timeouts

__all__ = ["Config", "ConfigError", "Location", "ServerBlock", "Timeouts", "load", "loads"]
