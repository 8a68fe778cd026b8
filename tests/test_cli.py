"""The command line: every command documents itself, and user errors are one line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fdivrl import __version__
from fdivrl import config as C
from fdivrl.cli.app import main
from fdivrl.errors import ConfigError


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["train"],
        ["bench"],
        ["compare"],
        ["data"],
        ["data", "list"],
        ["data", "antmaze"],
        ["data", "walker"],
        ["divergences"],
    ],
)
def test_every_command_has_help(argv, capsys):
    code, out, _ = run([*argv, "--help"], capsys)
    assert code == 0
    assert "Usage" in out


def test_train_help_explains_per_types(capsys):
    _, out, _ = run(["train", "--help"], capsys)
    for word in ("--per-type", "JS-exact", "--priority-mode", "--seeds", "--resume", "--preset"):
        assert word in out


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"fdivrl {__version__}"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--per-type", "wasserstein"], "unknown per_type 'wasserstein'; choose one of: uniform, PER, KL"),
        (["train", "--beta", "-1"], "beta must be > 0"),
        (["train", "--max-clip", "0"], "max_clip must be > 0"),
        (["train", "--js-min-weight", "3"], "js_min_weight (3.0) must be < js_max_weight"),
        (["train", "--mode", "sideways"], "--mode 'sideways' is not valid; choose one of: offline, online, finetune"),
        (["train", "--seeds", "0"], "--seeds must be >= 1"),
        (["train", "--priority-mode", "rank"], "choose one of: weight, sample"),
        (
            ["train", "--layer-norm", "critic,policy"],
            "--layer-norm 'policy' is not valid; choose one of",
        ),
        (["train", "--layer-norm", ","], "--layer-norm takes a comma list of actor, critic, value, or none"),
        (["bench", "antmaze", "--layer-norm", "critc"], "--layer-norm 'critc' is not valid"),
        (["bench", "antmaze", "--per-types", "KL,nope"], "unknown per_type 'nope'"),
        (
            ["train", "--mode", "online", "--env", "Hopper-v5", "--clip-targets"],
            "--clip-targets applies to --mode offline",
        ),
        (["train", "--mode", "finetune", "--clip-targets"], "--clip-targets applies to --mode offline"),
        (["bench", "mujoco", "--clip-targets"], "--clip-targets applies to --mode offline"),
        (["bench", "atari"], "suite 'atari' is not valid"),
        (["compare", "KL"], "at least two per_types"),
        (["compare", "KL", "bogus"], "unknown per_type 'bogus'"),
        (["data", "antmaze", "huge-maze"], "choose one of: umaze, umaze-diverse"),
        (["train", "--steps", "many"], "Invalid value for '--steps'"),
        (["train", "--no-such-flag"], "No such option"),
    ],
)
def test_user_errors_are_one_line_and_nonzero(argv, needle, capsys):
    code, out, err = run(argv, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err + out


def test_clip_targets_is_off_in_every_preset_as_its_help_says():
    assert C.option_help("clip_targets").endswith("Default: off (no preset turns it on).")
    for preset in C.PRESETS:
        assert C.preset_config(preset, None, "KL").learner.clip_targets is False


def test_no_clip_targets_is_what_every_mode_has():
    """--no-clip-targets asks for the default, so it is no error outside offline, where --clip-targets is."""
    online = C.preset_config("quick", None, "KL", mode="online", env="Hopper-v5")
    assert C.apply_options(online, {"clip_targets": False}).learner.clip_targets is False
    with pytest.raises(ConfigError, match="--clip-targets applies to --mode offline"):
        C.apply_options(online, {"clip_targets": True})


def test_per_type_names_are_case_insensitive(tmp_path, monkeypatch, capsys):
    # validation passes for any casing; bench then stops at the missing datasets (exit 3), not the names
    # (an empty minari root: with local stand-ins present this would start a real sweep)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    argv = ["bench", "antmaze", "--per-types", "kl,js-EXACT", "--per-types", "Chi2", "--results", str(tmp_path / "r")]
    code, _, err = run(argv, capsys)
    assert "unknown per_type" not in err and code == 3


def test_divergences_json_and_plot(tmp_path, capsys):
    png = tmp_path / "div.png"
    code, out, _ = run(["divergences", "--json", "--instances", "2", "--out", str(png)], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["z"] == [-5.0, -3.0, -1.0, 0.0, 1.0, 3.0, 5.0]
    assert set(report["weights"]) >= {"KL", "JS", "JS-exact", "chi2", "neyman", "hellinger", "reverse-KL"}
    assert report["weights"]["KL"][3] == pytest.approx(1.0)
    assert report["weights"]["JS"][3] == pytest.approx(1.25)  # the seed's sigmoid scaled to [0.5, 2]
    assert report["exact_ratio"]["JS-exact"][4] == float("inf")  # z = 1 is past the pole at log 2
    for check in report["solver_check"]:
        assert check["max_weight_error"] <= 1e-4
        assert check["max_lambda_error"] <= 1e-5
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_divergences_table_is_readable(tmp_path, capsys):
    code, out, _ = run(["divergences", "--instances", "1", "--no-plot"], capsys)
    assert code == 0
    assert "closed form vs numerical solver" in out
    assert "The seed's JS is not the JS optimum" in out


def test_installed_entry_point_prints_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "fdivrl", "train", "--per-type", "nope"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown per_type 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_python_api_builds_what_the_command_line_builds():
    import fdivrl
    from fdivrl import config as C
    from fdivrl.cli.train import train_config_builder

    cfg = fdivrl.make_config("js-exact", dataset="D4RL/antmaze/umaze-v1", steps=1000, seeds=2, priority_mode="SAMPLE")
    options = {"config": None, "seed": None, "seeds": 2, "per_type": "js-exact", "mode": None}
    options |= {"dataset": "D4RL/antmaze/umaze-v1", "env": None, "preset": None}
    options |= {o.key: None for o in C.TRAIN_OPTIONS} | {"steps": 1000, "priority_mode": "SAMPLE"}
    build, needs_default_dataset = train_config_builder(options)
    assert not needs_default_dataset and build(None) == cfg
    assert (cfg.per_type, cfg.seeds, cfg.steps, cfg.replay.mode, cfg.divergence.beta) == (
        "JS-exact",
        (0, 1),
        1000,
        "sample",
        6.0,
    )
    # a comma list is a set of networks, from the command line or Python; none is no LayerNorm
    for given, made in [
        ("VALUE,critic", ("critic", "value")),
        (("value", "critic"), ("critic", "value")),
        ("none", ()),
        ((), ()),
        (("none",), ()),
    ]:
        assert fdivrl.make_config("KL", layer_norm=given).learner.layer_norm == made
    assert C.preset_config("quick", None, "KL").learner.layer_norm == ("value",)
    with pytest.raises(ConfigError, match="--layer-norm takes a comma list"):
        fdivrl.make_config("KL", layer_norm=True)
    with pytest.raises(TypeError, match="unknown options"):
        fdivrl.make_config("KL", hidden=(8,))
    with pytest.raises(ConfigError, match="--utd applies to --mode online and finetune"):
        fdivrl.make_config("KL", utd=2)
    assert callable(fdivrl.train) and callable(fdivrl.bench) and callable(fdivrl.compare)
    with pytest.raises(AttributeError):
        fdivrl.no_such_thing  # noqa: B018


def test_ctrl_c_outside_training_is_one_line_and_exit_130(monkeypatch, capsys):
    # Typer turns a KeyboardInterrupt into a silent exit 130; fdivrl's own SIGINT handler keeps the line
    import os
    import signal
    import time

    from fdivrl.data import datasets

    def interrupted() -> list[str]:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler runs here
        raise AssertionError("SIGINT was not acted on")

    monkeypatch.setattr(datasets, "local_datasets", interrupted)
    before = signal.getsignal(signal.SIGINT)
    code, out, err = run(["data", "list"], capsys)
    assert code == 130 and len(err.strip().splitlines()) == 1, (out, err)
    assert err.startswith("error: interrupted (SIGINT)")
    assert signal.getsignal(signal.SIGINT) is before
