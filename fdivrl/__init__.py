"""fdivrl: f-divergence regularized experience replay, from the command line and from Python
(`fdivrl.make_config`, `fdivrl.train`, `fdivrl.bench`, `fdivrl.compare`: see fdivrl.api)."""

from typing import Any

__version__ = "0.1.0"
_API = ("make_config", "train", "bench", "compare")


def __getattr__(name: str) -> Any:
    # the API pulls in JAX; importing fdivrl for its version or CLI does not need it yet
    if name in _API:
        from fdivrl import api

        return getattr(api, name)
    raise AttributeError(f"module 'fdivrl' has no attribute {name!r}")
