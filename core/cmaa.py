"""Cross-Modal Alignment Attention (CMAA, VisLingInstruct): media tokens look up the instruction's words.

The projected Q-Former tokens V (already in the LLM's width) are queries; the instruction's token embeddings T from
the LLM's own table are keys and values: U = softmax(V T^T / sqrt(d)) T. V and U are joined and mapped by new fully
connected layers, added back to V as a residual. The last layer starts at zero, so a fresh CMAA returns V unchanged
and switching it on before training changes nothing; those layers are the only parameters CMAA trains.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from core.checkpoints import load_checkpoint
from core.media import file_digest


class CrossModalAlignmentAttention(nn.Module):
    def __init__(self, width: int, hidden: int | None = None) -> None:
        super().__init__()
        self.width = width
        self.hidden = hidden or width
        self.join = nn.Linear(2 * width, self.hidden)
        self.out = nn.Linear(self.hidden, width)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def config(self) -> dict:
        return {"width": self.width, "hidden": self.hidden}

    def forward(self, visual: torch.Tensor, text: torch.Tensor,
                text_mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """visual (..., n, W), text (..., L, W), text_mask (..., L) True on real tokens (for padded batches)
        -> fused tokens (..., n, W) and attention weights (..., n, L)."""
        if text.shape[-2] == 0:
            raise ValueError("CMAA needs at least one instruction token")
        text = text.to(visual.device, visual.dtype)  # the LLM (and its embeddings) may sit on another device
        if text_mask is not None:
            text_mask = text_mask.to(visual.device)
        scores = visual @ text.transpose(-1, -2) / math.sqrt(self.width)
        if text_mask is not None:
            scores = scores.masked_fill(~text_mask.bool()[..., None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        aligned = weights @ text
        fused = visual + self.out(nn.functional.gelu(self.join(torch.cat([visual, aligned], dim=-1))))
        return fused, weights


def instruction_embeddings(llm, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """CMAA's keys and values: the instructions' tokens in the LLM's own embedding table, right-padded (B, L, W),
    and the mask of real tokens (B, L)."""
    from core.llm import right_padded

    padded, mask = right_padded([llm.tokenizer(text, add_special_tokens=False).input_ids for text in instructions],
                                llm.tokenizer.pad_token_id)
    with torch.no_grad():
        return llm.embed(padded).float(), mask.bool().to(llm.device)


def load_cmaa(path: Path, width: int, bridge_file: Optional[Path] = None) -> CrossModalAlignmentAttention:
    """A CMAA module with the trained layers from `path` (its JSON config gives the hidden size). With
    `bridge_file`, a CMAA whose config records another bridge (by sha256) is refused: it learned that bridge's tokens."""
    config_path = Path(path).with_suffix(".json")
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if config.get("width", width) != width:
        raise ValueError(f"{Path(path).name} was trained for LLM width {config['width']}, this LLM has {width}")
    if bridge_file is not None and config.get("bridge_sha256") not in (None, file_digest(bridge_file)):
        raise ValueError(f"{Path(path).name} was trained on another {Path(bridge_file).name} (sha256 differs); "
                         "retrain it on this bridge")
    module = CrossModalAlignmentAttention(width, config.get("hidden"))
    load_checkpoint(module, path, required=("",))
    return module.eval()
