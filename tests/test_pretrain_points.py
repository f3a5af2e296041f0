"""3D encoder pre-training: runs on a few scenes, exports a loadable encoder, and resumes after its last epoch."""
import json
from pathlib import Path

import pytest
import torch

from core.checkpoints import load_checkpoint
from core.encoders.pointcloud import PointGroupEncoder
from train.pretrain_points import main
from train.world.dataset import generate_world


def test_pretraining_exports_and_resumes_after_the_last_finished_epoch(tmp_path, capsys):
    world = tmp_path / "world"
    generate_world(str(world), {"train": 6, "test": 3}, ["points"], progress=False)
    args = ["--data", str(world), "--out", str(tmp_path / "run"), "--export", str(tmp_path / "enc.safetensors"),
            "--batch-size", "4", "--train-clouds", "4", "--threads", "1", "--epochs", "2"]
    main(args + ["--max-minutes", "0"])  # an interruption after the first epoch
    assert "stopping after epoch 1" in capsys.readouterr().out and not (tmp_path / "enc.safetensors").exists()
    main(args)
    assert "resuming after epoch 1" in capsys.readouterr().out
    log = [json.loads(line) for line in (tmp_path / "run" / "train.log").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]  # epoch 1 was not trained again
    encoder = PointGroupEncoder()
    stored = load_checkpoint(encoder, tmp_path / "enc.safetensors")["pretraining"]
    assert stored["epochs"] == 2 and stored["train_clouds"] == 4
    assert all(torch.isfinite(p).all() for p in encoder.parameters())


def test_a_state_is_not_continued_under_more_epochs_or_another_learning_rate(tmp_path, capsys):
    import pytest

    world = tmp_path / "world"
    generate_world(str(world), {"train": 4, "test": 2}, ["points"], progress=False)
    args = ["--data", str(world), "--out", str(tmp_path / "run"), "--export", str(tmp_path / "enc.safetensors"),
            "--batch-size", "4", "--threads", "1"]
    main(args + ["--epochs", "1"])
    for changed, message in ((["--epochs", "3"], "--epochs 1 -> 3 (its one-cycle"), (["--epochs", "1", "--lr", "0.1"],
                                                                                      "--lr 0.002 -> 0.1")):
        with pytest.raises(SystemExit):
            main(args + changed)
        assert message in capsys.readouterr().err


def test_grouped_clouds_of_another_world_are_grouped_again(tmp_path):
    from train.pretrain_points import grouped_splits

    encoder, cache = PointGroupEncoder(), tmp_path / "grouped.pt"
    for seed in (0, 1):
        generate_world(str(tmp_path / f"world{seed}"), {"train": 2, "test": 1}, ["points"], world_seed=seed,
                       progress=False)
    first = grouped_splits(tmp_path / "world0", cache, encoder, None)
    assert torch.equal(grouped_splits(tmp_path / "world0", cache, encoder, None)["train"]["grouped"],
                       first["train"]["grouped"])
    second = grouped_splits(tmp_path / "world1", cache, encoder, None)
    fresh = grouped_splits(tmp_path / "world1", tmp_path / "fresh.pt", encoder, None)
    assert torch.equal(second["train"]["grouped"], fresh["train"]["grouped"])
    assert not torch.equal(second["train"]["grouped"], first["train"]["grouped"])


def test_a_missing_world_is_a_usage_error(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--export",
              str(tmp_path / "encoder.safetensors")])
    assert "nowhere/train/points/manifest.jsonl does not exist" in capsys.readouterr().err


def test_a_resume_may_spell_data_relative_or_absolute(tmp_path, monkeypatch):
    import argparse

    from train.pretrain_points import check_resumable, learning_args

    monkeypatch.chdir(tmp_path)
    values = dict(epochs=2, batch_size=4, lr=1e-3, seed=0, train_clouds=None)
    relative = learning_args(argparse.Namespace(data=Path("data/world"), **values))
    absolute = learning_args(argparse.Namespace(data=tmp_path / "data" / "world", **values))
    check_resumable(relative, absolute, tmp_path / "state.pt")
    check_resumable({**relative, "data": "data/world"}, absolute, tmp_path / "state.pt")  # as older states hold it
    other = learning_args(argparse.Namespace(data=Path("other"), **values))
    with pytest.raises(ValueError, match="--data .*world -> .*other"):
        check_resumable(relative, other, tmp_path / "state.pt")
