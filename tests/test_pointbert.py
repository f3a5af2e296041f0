"""ULIP-2 PointBERT: grouping, the transformer's shapes, and loading a ULIP checkpoint by name."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from core.encoders.pointbert import PointBERT, PointBERTConfig, PointBERTEncoder, load_pointbert
from core.reference_checkpoint import ReferenceCheckpointError
from reference_checkpoints import TINY_ULIP, ulip_reference_state

TINY = PointBERTConfig(num_points=1024, num_groups=32, group_size=16, group_width=TINY_ULIP["group_width"],
                       width=TINY_ULIP["width"], depth=TINY_ULIP["depth"], num_heads=TINY_ULIP["heads"],
                       output_width=TINY_ULIP["output_width"])


def sphere_cloud(n: int, seed: int = 0) -> np.ndarray:
    xyz = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    return xyz / np.linalg.norm(xyz, axis=1, keepdims=True)


def test_grouping_gives_centred_neighbourhoods():
    model = PointBERT(TINY)
    xyz = torch.from_numpy(sphere_cloud(1024))
    groups, centres, neighbours = model.group(xyz)
    assert groups.shape == (32, 16, 3) and centres.shape == (32, 3) and neighbours.shape == (32, 16)
    torch.testing.assert_close(groups + centres[:, None], xyz[neighbours])
    # Each centre is its own nearest neighbour, and the k nearest are nearer than any other point.
    assert torch.equal(groups.norm(dim=-1).min(dim=1).values, torch.zeros(32))
    distances = torch.cdist(centres, xyz)
    kth = distances.gather(1, neighbours).max(dim=1).values
    assert ((distances < kth[:, None] - 1e-6).sum(dim=1) <= 16).all()


def test_tiny_forward_shapes_and_batch_independence():
    model = PointBERT(TINY).eval()
    groups, centres, _ = model.group(torch.from_numpy(sphere_cloud(1024)))
    other, other_centres, _ = model.group(torch.from_numpy(sphere_cloud(1024, seed=1)))
    with torch.no_grad():
        both = model(torch.stack([groups, other]), torch.stack([centres, other_centres]))
        single = model(groups[None], centres[None])
    assert both.shape == (2, TINY.output_width)
    torch.testing.assert_close(both[:1], single)


def test_default_config_is_ulip2_pointbert():
    config = PointBERTConfig()
    assert (config.num_points, config.num_groups, config.group_size, config.width, config.depth,
            config.num_heads, config.group_width, config.output_width) == (8192, 512, 32, 384, 12, 6, 256, 512)


@pytest.fixture
def ulip_file(tmp_path):
    path = tmp_path / "ULIP-2_pointbert.pt"
    torch.save({"epoch": 3, "state_dict": ulip_reference_state(), "args": argparse.Namespace(model="ULIP2")}, path)
    return path


def test_ulip_checkpoint_loads_by_name(ulip_file):
    model = load_pointbert(ulip_file, TINY)
    state = ulip_reference_state()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.equal(model.pc_projection, state["module.pc_projection"])
    assert torch.equal(model.point_encoder.blocks.blocks[1].attn.qkv.weight,
                       state["module.point_encoder.blocks.blocks.1.attn.qkv.weight"])
    assert torch.equal(model.point_encoder.encoder.second_conv[1].running_var,
                       state["module.point_encoder.encoder.second_conv.1.running_var"])


def test_encode_cloud_gives_one_token_covering_the_cloud(ulip_file):
    encoder = PointBERTEncoder(load_pointbert(ulip_file, TINY))
    encoded = encoder.encode_cloud(sphere_cloud(1024))
    assert encoded.tokens.shape == (1, 1, TINY.output_width) and encoded.mask.all()
    assert encoded.group_centres.shape == (1, 3) and encoded.point_groups.shape == (1, 1024)
    assert torch.equal(encoder.encode_cloud(sphere_cloud(1024)).tokens, encoded.tokens)  # seeded sampling
    assert not torch.equal(encoder.encode_cloud(sphere_cloud(1024, seed=5)).tokens, encoded.tokens)
    with pytest.raises(ValueError, match=r"expected an \(N, 3\) point cloud"):
        encoder.encode_cloud(np.zeros((100, 6), dtype=np.float32))


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("module.point_encoder.cls_pos"), "'point_encoder.cls_pos' is missing"),
    (lambda s: s.update({"module.pc_projection": torch.zeros(96, 1280)}),
     r"'pc_projection' has shape \(96, 1280\), this PointBERT config expects \(96, 24\)"),
    (lambda s: s.update({"module.point_encoder.blocks.blocks.2.norm1.weight": torch.zeros(48)}),
     "unexpected PointBERT weight 'point_encoder.blocks.blocks.2.norm1.weight'"),
])
def test_mismatched_checkpoint_is_refused(tmp_path, edit, message):
    state = ulip_reference_state()
    edit(state)
    torch.save({"state_dict": state}, tmp_path / "u.pt")
    with pytest.raises(ReferenceCheckpointError, match=message):
        load_pointbert(tmp_path / "u.pt", TINY)
