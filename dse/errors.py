"""The two kinds of expected failure; the CLI prints either as one line and exits 2.

Kept free of heavy imports so that ``dse.cli`` can catch them (and Ctrl-C) from the first
moment, before numpy, numba and xarray have loaded.
"""


class ConfigError(ValueError):
    """Invalid user input: the message is one line naming file, key, value and remedy."""


class OutputError(OSError):
    """The output location cannot be used (exists, in use, not writable, disk full)."""
