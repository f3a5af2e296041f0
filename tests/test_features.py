"""The feature cache: parts resume, and a part cached from other data is never reused."""
from __future__ import annotations

import pytest
import torch

from train.features import cache_features, load_features
from train.world.dataset import generate_world


def test_features_cached_from_another_world_are_encoded_again(tmp_path):
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "features"
    for root, seed in ((first, 0), (second, 1)):
        generate_world(str(root), {"train": 3}, ["image"], world_seed=seed, progress=False)

    cache_features(first, out, "train", "image", part_size=2)
    parts_of_first = sorted(p.name for p in (out / "train" / "image.parts").iterdir())
    assert len(parts_of_first) == 2
    cache_features(second, out, "train", "image", part_size=2)
    tokens, _, rows = load_features(out / "train" / "image.safetensors")

    fresh = cache_features(second, tmp_path / "fresh", "train", "image", part_size=2)
    expected, _, expected_rows = load_features(fresh)
    assert rows == expected_rows
    assert torch.equal(tokens, expected)
    parts = sorted(p.name for p in (out / "train" / "image.parts").iterdir())
    assert len(parts) == 2 and not set(parts) & set(parts_of_first)


def test_a_rerun_reuses_the_parts_it_already_encoded(tmp_path, monkeypatch):
    import train.features

    generate_world(str(tmp_path / "world"), {"train": 3}, ["image"], progress=False)
    cache_features(tmp_path / "world", tmp_path / "features", "train", "image", part_size=2)
    encoded = []
    real_encoder_for = train.features.encoder_for

    def counting_encoder_for(*args):
        encode = real_encoder_for(*args)
        return lambda path: encoded.append(path) or encode(path)

    monkeypatch.setattr(train.features, "encoder_for", counting_encoder_for)
    cache_features(tmp_path / "world", tmp_path / "features", "train", "image", part_size=2)
    assert encoded == []


def test_command_names_a_missing_manifest_or_3d_encoder_as_a_usage_error(tmp_path, capsys):
    import pytest

    from train.features import main

    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "f"), "--split", "train",
              "--modality", "image"])
    assert "nowhere/train/image/manifest.jsonl does not exist; make the data first" in capsys.readouterr().err
    generate_world(str(tmp_path / "world"), {"train": 1}, ["points"], progress=False)
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "world"), "--out", str(tmp_path / "f"), "--split", "train",
              "--modality", "points", "--points-encoder", str(tmp_path / "absent.safetensors")])
    assert "the 3D encoder must be pre-trained first" in capsys.readouterr().err


def test_a_world_moved_to_another_folder_keeps_its_cached_parts(tmp_path, monkeypatch):
    import shutil

    import train.features

    generate_world(str(tmp_path / "world"), {"train": 3}, ["image"], progress=False)
    cache_features(tmp_path / "world", tmp_path / "features", "train", "image", part_size=2)
    shutil.move(tmp_path / "world", tmp_path / "moved")
    monkeypatch.setattr(train.features, "encoder_for", lambda *args: pytest.fail("a moved world was encoded again"))
    _, _, rows = load_features(cache_features(tmp_path / "moved", tmp_path / "features", "train", "image", part_size=2))
    assert all(row["path"].startswith(str(tmp_path / "moved")) for row in rows)


def test_a_file_the_loader_refuses_stops_the_stage_with_its_row_named(tmp_path, capsys):
    from train.features import main
    from train.world.records import read_manifest, write_manifest

    world = tmp_path / "world"
    generate_world(str(world), {"train": 2}, ["image"], progress=False)
    manifest = world / "train" / "image" / "manifest.jsonl"
    records = read_manifest(str(manifest))
    with open(records[1].path, "r+b") as image:
        image.truncate(40)
    write_manifest(str(manifest), records)
    with pytest.raises(SystemExit):
        main(["--data", str(world), "--out", str(tmp_path / "features"), "--split", "train", "--modality", "image"])
    message = capsys.readouterr().err
    assert f"sample {records[1].sample_id} of {world}/train: " in message and "drop the row" in message
    assert "Traceback" not in message
