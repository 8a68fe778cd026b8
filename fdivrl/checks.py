"""Checks that config `validate()` methods share, worded with the option a user types.

A config field `batch_size` is the flag `--batch-size`, so an error names what to change whether
the value came from the command line, a saved config.json or Python.
"""

from __future__ import annotations

from typing import Any

from fdivrl.errors import ConfigError

MAX_COUNT = 2**31 - 1
"""Largest step, update, episode or seed count an option takes: the learner's step counter and the
replay's indices are int32, so a larger count would wrap around mid-run instead of failing up front."""


def flag(name: str) -> str:
    """The command-line spelling of a field or option name: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def count(name: str, value: Any, low: int = 1) -> None:
    """An integer count in [low, MAX_COUNT]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{flag(name)} must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{flag(name)} must be >= {low}, got {value}")
    if value > MAX_COUNT:
        raise ConfigError(f"{flag(name)} must be <= {MAX_COUNT} (fdivrl counts in int32), got {value}")


def canonical(value: str, options: tuple[str, ...]) -> str:
    """The option spelled as listed when `value` matches it case-insensitively, else `value`."""
    for option in options:
        if value.lower() == option.lower():
            return option
    return value


def choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{flag(name)} {value!r} is not valid; choose one of: {', '.join(options)}")
