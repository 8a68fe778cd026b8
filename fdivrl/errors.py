"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""

OTHER_DIR = "choose another --out (in a sweep, another --results)"
"""The way out of a run directory that cannot take this run; bench names its run directories itself."""


class FdivrlError(Exception):
    """Base class: anything raised as an FdivrlError is the user's to fix, not a bug."""

    exit_code = 2


class ConfigError(FdivrlError, ValueError):
    """A hyperparameter or option value is invalid."""


class UnknownPerType(ConfigError):
    """--per-type names no registered divergence or baseline."""


class DatasetError(FdivrlError):
    """A dataset is missing, unreadable or incompatible."""

    exit_code = 3


class TrainingDiverged(FdivrlError):
    """NaN or inf appeared in losses; the last good checkpoint is kept."""

    exit_code = 5
