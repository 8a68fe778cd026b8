"""Optional loggers: tensorboard event files and an offline wandb run, no network."""

from __future__ import annotations

import pytest

from fdivrl.errors import ConfigError
from fdivrl.runs.loggers import Logger, make_logger


def test_tensorboard_writes_readable_scalars(tmp_path):
    logger = make_logger("tensorboard", tmp_path, {"per_type": "KL"}, "run")
    logger.log(100, {"critic_loss": 1.5, "v_mean": -2.0}, "seed0/train")
    logger.log(200, {"critic_loss": 0.5}, "seed0/train")
    logger.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    assert read_scalars(events[0])["seed0/train/critic_loss"] == [(100, 1.5), (200, 0.5)]


def read_scalars(path) -> dict[str, list[tuple[int, float]]]:
    """Parse the TFRecord event file (length, crc, Event proto, crc) with tensorboardX's protos."""
    from tensorboardX.proto.event_pb2 import Event

    data, pos, out = path.read_bytes(), 0, {}
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 8], "little")
        event = Event.FromString(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
        for v in event.summary.value:
            out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_wandb_runs_offline_without_network(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = make_logger("wandb", tmp_path, {"per_type": "JS"}, "run")
    logger.log(10, {"critic_loss": 1.0}, "seed0/train")
    logger.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_none_and_bad_kind():
    assert type(make_logger("none", None, {}, "x")) is Logger
    with pytest.raises(ConfigError, match="choose one of: none, tensorboard, wandb"):
        make_logger("mlflow", None, {}, "x")
