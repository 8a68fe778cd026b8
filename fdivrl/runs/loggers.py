"""Optional loggers beside the JSONL files (which stay the record of truth).

`--log tensorboard` writes event files to <run>/tensorboard; `--log wandb` runs wandb in offline
mode by default (WANDB_MODE overrides), so neither needs a network. Both are optional extras.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fdivrl.errors import ConfigError

KINDS = ("none", "tensorboard", "wandb")


class Logger:
    """Scalars per step; the no-op base is what `--log none` gets."""

    def log(self, step: int, scalars: Mapping[str, float], prefix: str) -> None: ...

    def close(self) -> None: ...


class TensorboardLogger(Logger):
    def __init__(self, run_dir: Path) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(run_dir / "tensorboard"))

    def log(self, step: int, scalars: Mapping[str, float], prefix: str) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger(Logger):
    def __init__(self, run_dir: Path, config: Mapping[str, Any], name: str) -> None:
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "fdivrl"),
            name=name,
            dir=str(run_dir),
            config=dict(config),
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="finish_previous",
        )

    def log(self, step: int, scalars: Mapping[str, float], prefix: str) -> None:
        self.run.log({f"{prefix}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        self.run.finish()


def make_logger(kind: str, run_dir: Path, config: Mapping[str, Any], name: str) -> Logger:
    """The logger for `--log kind`; a missing optional package is a one-line error naming the extra."""
    if kind not in KINDS:
        raise ConfigError(f"--log {kind!r} is not valid; choose one of: {', '.join(KINDS)}")
    if kind == "none":
        return Logger()
    package = {"tensorboard": "tensorboardX", "wandb": "wandb"}[kind]
    try:
        __import__(package)
    except ImportError:
        raise ConfigError(f"--log {kind} needs {package}: pip install 'fdivrl[{kind}]'") from None
    return TensorboardLogger(run_dir) if kind == "tensorboard" else WandbLogger(run_dir, config, name)
