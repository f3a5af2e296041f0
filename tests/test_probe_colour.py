"""The colour probe behind the image modality's mid-level tokens: one feature row per drawn object, at its cell."""
from __future__ import annotations

import torch

from train.probe_colour import fit_softmax_probe, object_cells, probe_levels
from train.features import manifest_rows
from train.world.dataset import generate_world


def test_object_cells_give_one_row_per_drawn_object_and_the_probe_scores_each_level(tmp_path):
    from core.encoders.image import EfficientNetImageEncoder

    generate_world(str(tmp_path), {"train": 6, "test": 4}, ["image"])
    encoder = EfficientNetImageEncoder()
    train, test = (manifest_rows(tmp_path, split, "image") for split in ("train", "test"))
    cells = object_cells(encoder, train, {7}, batch=4)
    assert len(cells[1]) == sum(len(r["properties"]["objects"]) for r in train)
    assert cells[0]["head"].shape == (len(cells[1]), 1280) and cells[0][7].shape == (len(cells[1]), 80)
    results = probe_levels(cells, object_cells(encoder, test, {7}), {"head": ["head"], "both": ["head", 7]})
    assert results["both"]["channels"] == 1360
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in results.values())


def test_the_softmax_probe_separates_linearly_separable_classes():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(30)
    x = torch.randn(90, 5, generator=generator) * 0.3 + torch.nn.functional.one_hot(labels, 5).float() * 3
    probe = fit_softmax_probe(x, labels, 3)
    assert (probe(x).argmax(1) == labels).all()
