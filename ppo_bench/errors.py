"""Errors the command line reports as one line, without a traceback."""


class ConfigError(ValueError):
    """A bad option: the message names the option and the values it allows."""


class NonFiniteLoss(FloatingPointError):
    """A run's loss or parameters became NaN/inf; that run stops, its last good checkpoint stays."""
