"""X-InstructBLIP checkpoint import: reference key names -> our bridge, refusals, and the converter round trip."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core.qformer import QFormerSettings
from core.reference_checkpoint import ReferenceCheckpointError, read_reference_checkpoint
from core.xinstructblip_import import (XInstructBlipImportError, bridge_shapes, build_bridge, import_xinstructblip,
                                       load_bridge, reference_key)
from reference_checkpoints import SmallQFormer, reference_keys, xinstructblip_state

SIZES = SmallQFormer()
REPO = Path(__file__).resolve().parents[1]


def small_settings(encoder_width: int = SIZES.encoder_width) -> QFormerSettings:
    return QFormerSettings(encoder_width=encoder_width, num_query_tokens=SIZES.queries, hidden_size=SIZES.hidden,
                           num_layers=12, num_heads=12, intermediate_size=SIZES.intermediate,
                           cross_attention_frequency=2, vocab_size=SIZES.vocab, init_from_text_model=False)


def save_reference(path: Path, state: dict, wrap: bool = True) -> Path:
    torch.save({"model": state} if wrap else state, path)
    return path


@pytest.fixture(scope="module")
def audio_state() -> dict[str, torch.Tensor]:
    state = xinstructblip_state("audio", SIZES)
    # Things a real training checkpoint also carries and the import must leave alone.
    state["audio_encoder.model.layer_norm.weight"] = torch.ones(3)
    state["llm_model.model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    return state


@pytest.mark.parametrize("prefix", ["image", "video", "audio", "pc"])
def test_key_lists_are_exactly_what_a_bridge_is_filled_from(prefix):
    """Our renaming of every bridge tensor lands on the stored reference list (less the position_ids buffer)."""
    ours = {reference_key(k, prefix) for k in bridge_shapes(small_settings(), SIZES.llm_width)}
    stored = set(reference_keys(prefix))
    assert ours == stored - {f"{prefix}_Qformer.bert.embeddings.position_ids"}
    assert f"{prefix}_Qformer.bert.encoder.layer.10.crossattention.self.key.weight" in stored
    assert f"{prefix}_Qformer.bert.encoder.layer.11.crossattention.self.key.weight" not in stored


def test_import_reads_sizes_and_maps_every_tensor(tmp_path, audio_state):
    path = save_reference(tmp_path / "audio_qformer.pth", audio_state)
    imported = import_xinstructblip(path)
    assert list(imported) == ["audio"]
    bridge = imported["audio"]
    assert bridge.settings == replace(small_settings(), max_instruction_tokens=128)
    assert bridge.llm_width == SIZES.llm_width
    for key, tensor in bridge.state.items():
        assert torch.equal(tensor, audio_state[reference_key(key, "audio")])
    assert "audio_encoder.model.layer_norm.weight" in bridge.ignored
    assert "audio_Qformer.bert.embeddings.position_ids" in bridge.ignored


def test_imported_bridge_runs_and_uses_the_reference_weights(tmp_path, audio_state):
    imported = import_xinstructblip(save_reference(tmp_path / "a.pth", audio_state))["audio"]
    bridge = build_bridge(imported).eval()
    assert torch.equal(bridge.qformer.qformer.encoder.layer[4].crossattention.attention.key.weight,
                       audio_state["audio_Qformer.bert.encoder.layer.4.crossattention.self.key.weight"])
    assert torch.equal(bridge.projection.bias, audio_state["audio_llm_proj.bias"])
    with torch.no_grad():
        out = bridge.qformer(torch.randn(2, 7, SIZES.encoder_width), torch.ones(2, 7, dtype=torch.bool),
                             torch.tensor([[5, 6, 7]] * 2), torch.ones(2, 3, dtype=torch.long))
        tokens = bridge.projection(out.query_states)
    assert tokens.shape == (2, SIZES.queries, SIZES.llm_width)
    assert torch.isfinite(tokens).all()
    assert not any(p.requires_grad for p in bridge.linear_baseline.parameters())


def test_file_with_several_modalities_and_the_pc_name(tmp_path):
    state = {**xinstructblip_state("image", SIZES, seed=1),
             **xinstructblip_state("pc", replace(SIZES, encoder_width=16), seed=2)}
    imported = import_xinstructblip(save_reference(tmp_path / "both.pth", state, wrap=False))
    assert sorted(imported) == ["image", "points"]
    assert imported["points"].settings.encoder_width == 16
    only = import_xinstructblip(tmp_path / "both.pth", ["points"])
    assert list(only) == ["points"]


@pytest.mark.parametrize("break_it, message", [
    (lambda s: s.pop("audio_Qformer.bert.encoder.layer.7.output_query.LayerNorm.bias"),
     "audio_Qformer.bert.encoder.layer.7.output_query.LayerNorm.bias is missing"),
    (lambda s: s.update({"audio_Qformer.bert.encoder.layer.2.crossattention.self.value.weight": torch.zeros(48, 30)}),
     "audio_Qformer.bert.encoder.layer.2.crossattention.self.value.weight has shape (48, 30), but"),
    (lambda s: s.update({"audio_Qformer.bert.encoder.layer.3.crossattention.self.query.weight": torch.zeros(48, 48)}),
     "unexpected audio_Qformer.bert.encoder.layer.3.crossattention.self.query.weight"),
    (lambda s: s.pop("audio_query_tokens"), "audio_query_tokens is missing"),
])
def test_broken_file_is_refused_naming_the_first_misfit(tmp_path, audio_state, break_it, message):
    state = dict(audio_state)
    break_it(state)
    path = save_reference(tmp_path / "broken.pth", state)
    with pytest.raises(XInstructBlipImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_xinstructblip(path)


def test_expected_sizes_are_enforced(tmp_path, audio_state):
    path = save_reference(tmp_path / "a.pth", audio_state)
    with pytest.raises(XInstructBlipImportError, match=r"audio_ln.weight has shape \(24,\), but the expected .* "
                                                       r"over 768-wide encoder tokens expects \(768,\)"):
        import_xinstructblip(path, expected={"audio": small_settings(encoder_width=768)})
    assert import_xinstructblip(path, expected={"audio": small_settings()})["audio"].settings == small_settings()


def test_wrong_files_are_refused(tmp_path, audio_state):
    torch.save({"model": {"visual.weight": torch.ones(2)}}, tmp_path / "other.pth")
    with pytest.raises(XInstructBlipImportError, match="no X-InstructBLIP Q-Former in it"):
        import_xinstructblip(tmp_path / "other.pth")
    path = save_reference(tmp_path / "a.pth", audio_state)
    with pytest.raises(XInstructBlipImportError, match="holds no video Q-Former"):
        import_xinstructblip(path, ["video"])


class Payload:
    """Stands for arbitrary pickled code: weights_only loading must refuse the file."""


def test_pickled_objects_are_refused(tmp_path, audio_state):
    torch.save({"model": dict(audio_state), "extra": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ReferenceCheckpointError, match="refused, it holds Python objects"):
        import_xinstructblip(tmp_path / "evil.pth")


def test_converter_round_trip(tmp_path, audio_state):
    from core.convert_xinstructblip import main

    source = save_reference(tmp_path / "audio_qformer.pth", audio_state)
    assert main([str(source), str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["audio.json", "audio.safetensors"]
    bridge = load_bridge(tmp_path / "out" / "audio.safetensors", "audio", expected=small_settings())
    state = bridge.state_dict()
    for key in bridge_shapes(small_settings(), SIZES.llm_width):
        assert torch.equal(state[key], audio_state[reference_key(key, "audio")]), key
    from safetensors.torch import load_file

    assert not any(k.startswith("linear_baseline.") for k in load_file(tmp_path / "out" / "audio.safetensors"))
    with pytest.raises(XInstructBlipImportError, match="expected a Q-Former .* over 768-wide"):
        load_bridge(tmp_path / "out" / "audio.safetensors", "audio", expected=small_settings(encoder_width=768))


def test_reference_file_loads_directly_as_a_frozen_bridge(tmp_path, audio_state):
    bridge = load_bridge(save_reference(tmp_path / "a.pth", audio_state), "audio")
    assert not bridge.training and not any(p.requires_grad for p in bridge.parameters())
    assert torch.equal(bridge.qformer.query_tokens, audio_state["audio_query_tokens"])


def test_converter_cli_reports_a_broken_file(tmp_path, audio_state):
    state = dict(audio_state)
    del state["audio_llm_proj.bias"]
    source = save_reference(tmp_path / "broken.pth", state)
    run = subprocess.run([sys.executable, "-m", "core.convert_xinstructblip", str(source), str(tmp_path / "out")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "audio_llm_proj.bias is missing" in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b"1.0 2.0 3.0\n" * 50,
                                     b"\x80\x02" + bytes(200)])
def test_files_that_are_no_checkpoint_say_so(tmp_path, content):
    """Not a pickle, or a broken one: a plain 'not a checkpoint', never a traceback or the code-execution warning."""
    path = tmp_path / "file.pth"
    path.write_bytes(content)
    with pytest.raises(ReferenceCheckpointError, match="not a readable PyTorch checkpoint"):
        read_reference_checkpoint(path)
