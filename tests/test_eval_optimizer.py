"""The optimiser evaluation's command line: its inputs are checked before the preset's model is built."""
from __future__ import annotations

import json

import pytest

from train import eval_optimizer


def _refusal(argv, monkeypatch, capsys) -> str:
    monkeypatch.setattr("core.presets.get_preset", lambda name: pytest.fail("the model was built"))
    with pytest.raises(SystemExit):
        eval_optimizer.main(argv)
    return capsys.readouterr().err


def test_missing_features_or_instructions_are_named_before_the_model_is_built(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "out.json")
    error = _refusal(["--modality", "image", "--features", str(tmp_path / "f.safetensors"), "--out", out],
                     monkeypatch, capsys)
    assert "f.safetensors does not exist" in error and "--features" in error
    features = tmp_path / "f.safetensors"
    features.write_bytes(b"")
    error = _refusal(["--modality", "image", "--features", str(features), "--instructions",
                      str(tmp_path / "i.jsonl"), "--out", out], monkeypatch, capsys)
    assert "i.jsonl does not exist" in error


def test_a_bridge_of_another_modality_is_refused_before_the_model_is_built(tmp_path, monkeypatch, capsys):
    features, instructions, bridge = tmp_path / "f.safetensors", tmp_path / "i.jsonl", tmp_path / "p.safetensors"
    for path in (features, instructions, bridge):
        path.write_bytes(b"")
    bridge.with_suffix(".json").write_text(json.dumps({"modality": "points", "trained": {"qformer": {}}}))
    error = _refusal(["--modality", "image", "--features", str(features), "--instructions", str(instructions),
                      "--bridge", str(bridge), "--out", str(tmp_path / "out.json")], monkeypatch, capsys)
    assert "is a bridge for points, not image" in error


def test_a_bridge_with_other_qformer_settings_than_the_presets_replaces_it_whole(tmp_path):
    from types import SimpleNamespace

    import torch

    from core.checkpoints import save_checkpoint
    from core.model import ModalityBridge
    from core.qformer import QFormerSettings

    trained = ModalityBridge(QFormerSettings(encoder_width=16, num_query_tokens=4), 32)
    checkpoint = tmp_path / "image.safetensors"
    save_checkpoint(trained, checkpoint, {"modality": "image", "qformer": trained.settings.to_dict(),
                                          "trained": {"qformer": {}}})
    model = SimpleNamespace(llm=SimpleNamespace(width=32),
                            bridges={"image": ModalityBridge(QFormerSettings(encoder_width=24), 32)})
    eval_optimizer.swap_bridge(model, "image", checkpoint)
    swapped = model.bridges["image"]
    assert swapped.settings.num_query_tokens == 4 and not swapped.training
    assert torch.allclose(swapped.qformer.query_tokens, trained.qformer.query_tokens.half().float())
