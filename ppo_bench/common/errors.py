"""Errors the command line reports as one line, without a traceback."""

import argparse


class ConfigError(ValueError):
    """A bad option: the message names the option and the values it allows."""


class NonFiniteLoss(FloatingPointError):
    """A run's loss or parameters became NaN/inf; that run stops, its last good checkpoint stays."""


class RunsFailed(RuntimeError):
    """Some runs of a launch failed (a non-finite loss); the others finished. One line, exit code 1: raised,
    not exited, so that the other jobs of a Hydra multirun still run."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are ConfigErrors, so that a command reports them in its one line (exit code 2)."""

    def error(self, message):
        raise ConfigError(message)
