"""The assembled model: frozen encoder -> per-modality Q-Former (or linear baseline) -> LLM width -> frozen LLM.

Each modality has its own bridge (LayerNorm, query tokens, Q-Former, projection, baseline, optional CMAA) trained
independently; the encoders and the LLM are shared and frozen.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from core.checkpoints import load_checkpoint
from core.encoders.base import EncodedMedia
from core.llm import LoadedLLM
from core.projection import LinearProjectionBaseline, QueryProjection
from core.prompt import AssembledInput, PromptStyle, assemble, render_pieces
from core.qformer import InstructionAwareQFormer, QFormerSettings
from core.schema import GenerationSettings


@dataclass
class BridgeOutput:
    tokens: torch.Tensor
    """(passes * queries, llm width): what the LLM sees for this modality (with a leading batch dimension when it
    comes straight from `ModalityBridge`)."""
    cross_attentions: Optional[torch.Tensor] = None
    """(passes, layers, queries, encoder tokens) for the Q-Former path (batched likewise)."""
    cmaa_weights: Optional[torch.Tensor] = None
    """(passes * queries, instruction tokens) when CMAA ran."""


class ModalityBridge(nn.Module):
    """Everything trained for one modality."""

    PART_PREFIXES = {"qformer": ("qformer.", "projection."), "linear": ("linear_baseline.",), "cmaa": ("cmaa.",)}
    """Parameter-name prefixes of each separately trained part; a bridge checkpoint's JSON lists under `trained`
    the parts its file holds."""

    def __init__(self, settings: QFormerSettings, llm_width: int) -> None:
        super().__init__()
        self.settings = settings
        self.qformer = InstructionAwareQFormer(settings)
        self.projection = QueryProjection(settings.hidden_size, llm_width)
        self.linear_baseline = LinearProjectionBaseline(settings.encoder_width, llm_width, settings.num_query_tokens)
        self.cmaa: Optional[nn.Module] = None
        self.baseline_trained = True
        """False for bridges imported from the reference, which has no linear baseline."""

    @classmethod
    def from_checkpoint(cls, path: Path, llm_width: int) -> "ModalityBridge":
        """A bridge built with the Q-Former settings its checkpoint's JSON records (encoder width, query count,
        joint passes: not necessarily a preset's), with the checkpoint loaded as `load_trained` does."""
        settings = QFormerSettings(**json.loads(Path(path).with_suffix(".json").read_text())["qformer"])
        bridge = cls(settings, llm_width)
        bridge.load_trained(path)
        return bridge

    def load_trained(self, path: Path) -> dict:
        """Load a bridge checkpoint, refusing a file that lacks a parameter of a part its JSON says was trained;
        the linear baseline counts as trained only when the file records it. Returns the JSON config."""
        config_path = Path(path).with_suffix(".json")
        parts = json.loads(config_path.read_text()).get("trained", {}) if config_path.is_file() else {}
        required = tuple(prefix for part in parts for prefix in self.PART_PREFIXES.get(part, ()))
        config = load_checkpoint(self, path, required)
        self.baseline_trained = "linear" in parts
        return config

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, instruction_ids: torch.Tensor,
                instruction_mask: torch.Tensor, projection: str = "qformer", output_attentions: bool = False,
                cmaa_text: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> BridgeOutput:
        """Inputs (B, P, N, W) with mask (B, P, N), one instruction each (B, L) -> tokens (B, P * queries, width);
        every pass of an input (video frame, audio segment) sees that input's instruction. Cross-attention comes
        back as (B, P, layers, queries, N) per encoder pass: a joint pass's weights are split by frame, so every
        view draws frames alike. `cmaa_text` (the instructions' LLM embeddings and mask, see
        `core.cmaa.instruction_embeddings`) runs the attached CMAA over the Q-Former tokens."""
        batch, passes = tokens.shape[:2]
        tokens, mask = self.passes(tokens, mask)
        rows = tokens.shape[1]
        if projection == "linear":
            if not self.baseline_trained:
                raise ValueError("this preset has no trained linear-projection baseline; use the Q-Former projection")
            weight = self.linear_baseline.proj.weight
            media = self.linear_baseline(tokens.flatten(0, 1).to(weight.device, weight.dtype),
                                         mask.flatten(0, 1).to(weight.device))
            return BridgeOutput(tokens=media.reshape(batch, -1, media.shape[-1]))
        device, dtype = self.projection.weight.device, self.projection.weight.dtype
        out = self.qformer(tokens.flatten(0, 1).to(device, dtype), mask.flatten(0, 1).to(device),
                           instruction_ids.to(device).repeat_interleave(rows, dim=0),
                           instruction_mask.to(device).repeat_interleave(rows, dim=0),
                           output_attentions=output_attentions)
        media = self.projection(out.query_states).reshape(batch, -1, self.projection.out_features)
        cross = out.cross_attentions
        if cross is not None:
            layers, queries = cross.shape[1:3]
            cross = cross.reshape(batch, rows, layers, queries, passes // rows, -1)
            cross = cross.permute(0, 1, 4, 2, 3, 5).reshape(batch, passes, layers, queries, -1)
        out = BridgeOutput(tokens=media, cross_attentions=cross)
        if cmaa_text is not None:
            out.tokens, out.cmaa_weights = self.cmaa(media, *cmaa_text)
        return out

    def passes(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P, N, W) encoder passes as this bridge consumes them: unchanged, or joined into one pass."""
        if self.settings.joint_passes:
            from core.encoders.positional import join_passes

            return join_passes(tokens, mask)
        return tokens, mask


class XModalModel(nn.Module):
    def __init__(self, llm: LoadedLLM, qformer_tokenizer: Any, encoders: dict[str, Callable[[Any], EncodedMedia]],
                 encoder_modules: dict[str, nn.Module], bridges: dict[str, ModalityBridge],
                 prompt_style: PromptStyle = "chat_template") -> None:
        super().__init__()
        self.llm = llm
        self.qformer_tokenizer = qformer_tokenizer
        self.encoders = encoders
        self.encoder_modules = nn.ModuleDict(encoder_modules)
        self.bridges = nn.ModuleDict(bridges)
        self.prompt_style = prompt_style

    @property
    def modalities(self) -> list[str]:
        return list(self.bridges.keys())

    @torch.no_grad()
    def encode(self, modality: str, media: Any) -> EncodedMedia:
        """Run the frozen encoder for `modality` on loaded media (PIL image, waveform, VideoClip, PointCloud)."""
        return self.encoders[modality](media)

    def tokenize_instruction(self, instruction: str) -> tuple[torch.Tensor, torch.Tensor]:
        max_len = next(iter(self.bridges.values())).settings.max_instruction_tokens
        batch = self.qformer_tokenizer(instruction, truncation=True, max_length=max_len, return_tensors="pt")
        return batch.input_ids, batch.attention_mask

    def instruction_tokens(self, instruction: str) -> list[str]:
        """The LLM's token strings of an instruction (the columns of a CMAA attention map)."""
        ids = self.llm.tokenizer(instruction, add_special_tokens=False).input_ids
        return self.llm.tokenizer.convert_ids_to_tokens(ids)

    def media_tokens(self, modality: str, encoded: EncodedMedia, instruction: str,
                     settings: GenerationSettings, output_attentions: bool = False) -> BridgeOutput:
        from core.cmaa import instruction_embeddings

        bridge = self.bridges[modality]
        ids, mask = self.tokenize_instruction(instruction)
        use_cmaa = settings.cmaa and settings.projection == "qformer"
        if use_cmaa and bridge.cmaa is None:
            raise ValueError(f"CMAA is switched on but no CMAA weights are loaded for {modality}")
        batched = bridge(encoded.tokens[None], encoded.mask[None], ids, mask, projection=settings.projection,
                         output_attentions=output_attentions,
                         cmaa_text=instruction_embeddings(self.llm, [instruction]) if use_cmaa else None)
        return BridgeOutput(*(None if t is None else t[0] for t in
                              (batched.tokens, batched.cross_attentions, batched.cmaa_weights)))

    def build_input(self, question: str, media_tokens: dict[str, torch.Tensor], history: list[tuple[str, str]],
                    prefix_cues: bool = True, keep_media_order: bool = False) -> AssembledInput:
        """`keep_media_order`: media in the dict's order instead of the canonical one (core.prompt.render_pieces)."""
        pieces = render_pieces(question, list(media_tokens), history, self.llm.tokenizer,
                               prefix_cues=prefix_cues, style=self.prompt_style, keep_order=keep_media_order)
        dtype = self.llm.model.get_input_embeddings().weight.dtype
        media = {m: t.to(self.llm.device, dtype) for m, t in media_tokens.items()}
        return assemble(pieces, media, self.llm.tokenizer, self.llm.embed)

    def answer_loss(self, prompt: AssembledInput, answer: str) -> torch.Tensor:
        """Mean cross-entropy on the answer's tokens only (plus the end-of-turn token); the prompt is not scored."""
        tokenizer = self.llm.tokenizer
        target = tokenizer(answer, add_special_tokens=False, return_tensors="pt").input_ids[0]
        target = torch.cat([target, torch.tensor([tokenizer.eos_token_id])]).to(self.llm.device)
        embeds = torch.cat([prompt.inputs_embeds[0], self.llm.embed(target).to(prompt.inputs_embeds.dtype)])[None]
        logits = self.llm.model(inputs_embeds=embeds).logits[0]
        start = prompt.inputs_embeds.shape[1]
        predicted = logits[start - 1 : start - 1 + target.shape[0]].float()
        return nn.functional.cross_entropy(predicted, target)
