"""Synthetic checkpoints in the reference projects' own formats, with small shapes.

Names come from the stored X-InstructBLIP key lists and from the BEATs / ULIP-2 source layouts, and shapes from
rules written here: nothing is derived from our modules, so a renaming slip on our side makes the tests fail.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

KEY_LISTS = Path(__file__).parent / "data" / "xinstructblip_keys"


@dataclass
class SmallQFormer:
    """BERT-base's layout (12 layers, cross-attention every 2nd), narrow: 48 wide so 12 heads still divide it."""

    hidden: int = 48
    intermediate: int = 96
    queries: int = 4
    vocab: int = 120
    positions: int = 512
    encoder_width: int = 24
    llm_width: int = 40


def reference_keys(prefix: str) -> list[str]:
    lines = (KEY_LISTS / f"{prefix}.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def reference_shape(key: str, prefix: str, s: SmallQFormer) -> tuple[int, ...]:
    """The shape the reference gives `key`, by the BERT / BLIP-2 layout rules."""
    is_bias = key.endswith(".bias")
    if key == f"{prefix}_query_tokens":
        return (1, s.queries, s.hidden)
    if key.startswith(f"{prefix}_ln."):
        return (s.encoder_width,)
    if key.startswith(f"{prefix}_llm_proj."):
        return (s.llm_width,) if is_bias else (s.llm_width, s.hidden)
    if key.endswith("embeddings.position_ids"):
        return (1, s.positions)
    if key.endswith("word_embeddings.weight"):
        return (s.vocab, s.hidden)
    if key.endswith("position_embeddings.weight"):
        return (s.positions, s.hidden)
    if "LayerNorm" in key:
        return (s.hidden,)
    if ".crossattention.self.key." in key or ".crossattention.self.value." in key:
        return (s.hidden,) if is_bias else (s.hidden, s.encoder_width)
    if "attention.self." in key or "attention.output.dense" in key:
        return (s.hidden,) if is_bias else (s.hidden, s.hidden)
    if ".intermediate" in key:
        return (s.intermediate,) if is_bias else (s.intermediate, s.hidden)
    if ".output.dense" in key or ".output_query.dense" in key:
        return (s.hidden,) if is_bias else (s.hidden, s.intermediate)
    raise AssertionError(f"no shape rule for {key}")


def xinstructblip_state(prefix: str, sizes: SmallQFormer, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key of the stored list for `prefix`, random values (position_ids as the reference's arange buffer)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key in reference_keys(prefix):
        shape = reference_shape(key, prefix, sizes)
        if key.endswith("position_ids"):
            state[key] = torch.arange(shape[1]).expand(shape).clone()
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


TINY_BEATS_CFG = {
    "input_patch_size": 16, "embed_dim": 16, "conv_bias": False, "encoder_layers": 2, "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 4, "activation_fn": "gelu", "layer_norm_first": False,
    "deep_norm": True, "conv_pos": 8, "conv_pos_groups": 4, "relative_position_embedding": True, "num_buckets": 32,
    "max_distance": 64, "gru_rel_pos": True, "finetuned_model": True, "predictor_class": 5, "dropout": 0.1,
    "layer_wise_gradient_decay_ratio": 0.6,
}
"""The real iter3+ cfg has these same keys (768 wide, 12 layers, 320 buckets, 800 max distance); training-only
fields such as dropout are part of the file and must be ignored."""


def beats_reference_state(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict named as microsoft/unilm beats/BEATs.py saves it (weight-normed pos_conv, shared relative bias
    repeated under every layer, fine-tuned classifier head)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(shape, generator=g) * 0.1  # noqa: E731
    e, d, f, h, k = (cfg["embed_dim"], cfg["encoder_embed_dim"], cfg["encoder_ffn_embed_dim"],
                     cfg["encoder_attention_heads"], cfg["conv_pos"])
    p = cfg["input_patch_size"]
    state = {
        "patch_embedding.weight": r(e, 1, p, p), "layer_norm.weight": 1 + r(e), "layer_norm.bias": r(e),
        "post_extract_proj.weight": r(d, e), "post_extract_proj.bias": r(d),
        "encoder.pos_conv.0.bias": r(d), "encoder.pos_conv.0.weight_g": 1 + r(1, 1, k),
        "encoder.pos_conv.0.weight_v": r(d, d // cfg["conv_pos_groups"], k),
        "encoder.layer_norm.weight": 1 + r(d), "encoder.layer_norm.bias": r(d),
        "predictor.weight": r(cfg["predictor_class"], d), "predictor.bias": r(cfg["predictor_class"]),
    }
    table = r(cfg["num_buckets"], h)
    for i in range(cfg["encoder_layers"]):
        layer = f"encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            state[f"{layer}self_attn.{name}.weight"], state[f"{layer}self_attn.{name}.bias"] = r(d, d), r(d)
        state[f"{layer}self_attn.relative_attention_bias.weight"] = table
        state[f"{layer}self_attn.grep_linear.weight"], state[f"{layer}self_attn.grep_linear.bias"] = r(8, d // h), r(8)
        state[f"{layer}self_attn.grep_a"] = 1 + r(1, h, 1, 1)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            state[f"{layer}{norm}.weight"], state[f"{layer}{norm}.bias"] = 1 + r(d), r(d)
        state[f"{layer}fc1.weight"], state[f"{layer}fc1.bias"] = r(f, d), r(f)
        state[f"{layer}fc2.weight"], state[f"{layer}fc2.bias"] = r(d, f), r(d)
    return state


TINY_ULIP = {"width": 48, "depth": 2, "heads": 4, "group_width": 32, "output_width": 24}


def ulip_reference_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A ULIP-2 training checkpoint's `state_dict` (DDP `module.` prefix, PointBERT + projection + other towers),
    with the mini-PointNet's fixed 128/256/512 channels and the small transformer sizes of `TINY_ULIP`."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(shape, generator=g) * 0.1  # noqa: E731
    w, c, out = TINY_ULIP["width"], TINY_ULIP["group_width"], TINY_ULIP["output_width"]
    pe = "module.point_encoder."
    state = {
        "module.logit_scale": torch.tensor(2.6), "module.pc_projection": r(2 * w, out),
        "module.image_projection": r(7, out), "module.visual.head.weight": r(3, 3),
        f"{pe}cls_token": r(1, 1, w), f"{pe}cls_pos": r(1, 1, w),
        f"{pe}reduce_dim.weight": r(w, c), f"{pe}reduce_dim.bias": r(w),
        f"{pe}pos_embed.0.weight": r(128, 3), f"{pe}pos_embed.0.bias": r(128),
        f"{pe}pos_embed.2.weight": r(w, 128), f"{pe}pos_embed.2.bias": r(w),
        f"{pe}norm.weight": 1 + r(w), f"{pe}norm.bias": r(w),
    }
    for conv, (cin, mid, cout) in {"first_conv": (3, 128, 256), "second_conv": (512, 512, c)}.items():
        base = f"{pe}encoder.{conv}."
        state[base + "0.weight"], state[base + "0.bias"] = r(mid, cin, 1), r(mid)
        state[base + "1.weight"], state[base + "1.bias"] = 1 + r(mid), r(mid)
        state[base + "1.running_mean"], state[base + "1.running_var"] = r(mid), 1 + r(mid).abs()
        state[base + "1.num_batches_tracked"] = torch.tensor(100)
        state[base + "3.weight"], state[base + "3.bias"] = r(cout, mid, 1), r(cout)
    for i in range(TINY_ULIP["depth"]):
        block = f"{pe}blocks.blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[f"{block}{norm}.weight"], state[f"{block}{norm}.bias"] = 1 + r(w), r(w)
        state[f"{block}attn.qkv.weight"] = r(3 * w, w)
        state[f"{block}attn.proj.weight"], state[f"{block}attn.proj.bias"] = r(w, w), r(w)
        state[f"{block}mlp.fc1.weight"], state[f"{block}mlp.fc1.bias"] = r(4 * w, w), r(4 * w)
        state[f"{block}mlp.fc2.weight"], state[f"{block}mlp.fc2.bias"] = r(w, 4 * w), r(w)
    return state
