"""`make checkpoints`, the one command that reproduces the shipped files, run with a stand-in for Python that only
records each command: every training config runs once, after the run its `init_from` names, and a failing stage
fails the command and points at its lane's log."""
from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODALITIES = ("image", "points", "audio", "video")


def make_checkpoints(tmp_path: Path, fail_on: str = "") -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
    """Run `make checkpoints` with RUN replaced by a script that logs its arguments (and fails on `fail_on`);
    returns make's result and each lane's logged commands."""
    runner = tmp_path / "run"
    runner.write_text(f'#!/bin/sh\necho "RAN $*"\ncase "$*" in *"{fail_on or "@never@"}"*) exit 3;; esac\n')
    runner.chmod(runner.stat().st_mode | stat.S_IEXEC)
    logs = tmp_path / "logs"
    result = subprocess.run(["make", "--no-print-directory", "-o", "install", "checkpoints", f"RUN={runner}",
                             f"LOGS={logs}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lanes = {m: [line[4:] for line in (logs / f"{m}.log").read_text().splitlines() if line.startswith("RAN ")]
             for m in MODALITIES if (logs / f"{m}.log").is_file()}
    return result, lanes


def test_every_config_runs_once_after_the_run_it_starts_from(tmp_path):
    result, lanes = make_checkpoints(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(lanes) == set(MODALITIES)
    shipped = sorted(p.name for p in (ROOT / "train" / "configs").glob("*.json"))
    ran = sorted(Path(m.group(1)).name for cmds in lanes.values() for c in cmds
                 if (m := re.search(r"--config (\S+)", c)))
    assert ran == shipped
    for modality, commands in lanes.items():
        written: set[str] = set()  # the files the lane's earlier runs wrote: run-folder copy, export
        for command in commands:
            config_path = re.search(r"--config (\S+)", command)
            if not config_path:
                continue
            config = json.loads((ROOT / config_path.group(1)).read_text())
            assert config["modality"] == modality
            assert Path(config["features"]).parent.name == "train"
            init = config.get("init_from")
            assert init is None or init in written, f"{config_path.group(1)} starts from {init}, not made before it"
            part = "cmaa" if config.get("cmaa") else config["projection"]
            written.add(f"{config['out']}/{modality}_{part}.safetensors")
            if config.get("export"):
                written.add(config["export"])
        features = [c for c in commands if "train.features" in c]
        assert [re.search(r"--split (\w+)", c).group(1) for c in features] == ["test", "val", "train"]
    assert "train.pretrain_points" in lanes["points"][0]
    assert not any("train.pretrain_points" in c for m in ("image", "audio", "video") for c in lanes[m])
    world, discrn = result.stdout.index("train.world"), result.stdout.index("train.discrn")
    assert world < result.stdout.index("lane image: started") < result.stdout.index("lane image: done") < discrn


@pytest.mark.parametrize("failing", ["audio_qformer.json", "train.features --split val --modality video"])
def test_a_failing_stage_fails_the_command_and_names_its_log(tmp_path, failing):
    result, lanes = make_checkpoints(tmp_path, fail_on=failing)
    lane = "audio" if "audio" in failing else "video"
    assert result.returncode != 0
    assert f"lane {lane}: failed, see {tmp_path / 'logs' / lane}.log" in result.stdout
    assert failing in lanes[lane][-1]  # nothing after the failed stage ran in its lane
    assert "train.discrn" not in result.stdout
    others = [m for m in MODALITIES if m != lane]
    assert all(f"lane {m}: done" in result.stdout for m in others)  # the other lanes finish their work
