"""hflow: reproduction pipeline for Kim et al., flow-based level synchronization in HRL."""

__version__ = "0.1.0"


class HflowError(ValueError):
    """A user error (bad config, task, option): the CLI prints it without a traceback."""
