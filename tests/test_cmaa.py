"""Cross-Modal Alignment Attention: starts as the identity, changes the media tokens once trained, follows the
instruction, ignores padding, and round-trips through a checkpoint into the preset."""
import hashlib

import pytest
import torch

from core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from core.cmaa import CrossModalAlignmentAttention, load_cmaa
from core.schema import GenerationSettings
from tests.media_fixtures import make_image

WIDTH = 16


def trained_like(width: int = WIDTH, seed: int = 0) -> CrossModalAlignmentAttention:
    """A CMAA whose zero-initialised output layer has been moved, as training would."""
    torch.manual_seed(seed)
    cmaa = CrossModalAlignmentAttention(width)
    with torch.no_grad():
        cmaa.out.weight.normal_(0, 0.1)
        cmaa.out.bias.normal_(0, 0.1)
    return cmaa


def test_fresh_cmaa_returns_the_media_tokens_unchanged():
    visual, text = torch.randn(6, WIDTH), torch.randn(4, WIDTH)
    fused, weights = CrossModalAlignmentAttention(WIDTH)(visual, text)
    assert torch.equal(fused, visual)
    assert weights.shape == (6, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(6))


def test_trained_cmaa_changes_the_tokens_and_follows_the_instruction():
    cmaa = trained_like()
    visual = torch.randn(6, WIDTH)
    fused_a, _ = cmaa(visual, torch.randn(4, WIDTH))
    fused_b, _ = cmaa(visual, torch.randn(4, WIDTH))
    assert not torch.allclose(fused_a, visual, atol=1e-3)
    assert not torch.allclose(fused_a, fused_b, atol=1e-3)


def test_padded_batch_equals_each_row_alone():
    cmaa = trained_like()
    visual = torch.randn(2, 6, WIDTH)
    text = torch.randn(2, 5, WIDTH)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    fused, weights = cmaa(visual, text, mask)
    alone, alone_weights = cmaa(visual[0], text[0, :3])
    assert torch.allclose(fused[0], alone, atol=1e-6)
    assert torch.allclose(weights[0, :, :3], alone_weights, atol=1e-6)
    assert torch.all(weights[0, :, 3:] == 0)


def test_empty_instruction_is_refused():
    with pytest.raises(ValueError, match="instruction token"):
        CrossModalAlignmentAttention(WIDTH)(torch.randn(6, WIDTH), torch.randn(0, WIDTH))


def test_checkpoint_round_trip(tmp_path):
    cmaa = trained_like()
    path = tmp_path / "image_cmaa.safetensors"
    save_checkpoint(cmaa, path, cmaa.config(), dtype=torch.float32)
    loaded = load_cmaa(path, WIDTH)
    visual, text = torch.randn(6, WIDTH), torch.randn(4, WIDTH)
    assert torch.equal(loaded(visual, text)[0], cmaa(visual, text)[0])
    with pytest.raises(ValueError, match="width"):
        load_cmaa(path, WIDTH * 2)
    other = CrossModalAlignmentAttention(WIDTH, hidden=8)
    with pytest.raises(CheckpointError):
        load_checkpoint(other, path)


def test_switching_cmaa_on_without_weights_says_so(tiny_pipeline, tmp_path, monkeypatch):
    from core.media import load_image

    model = tiny_pipeline.model
    monkeypatch.setattr(model.bridges["image"], "cmaa", None)
    encoded = model.encode("image", load_image(str(make_image(tmp_path / "x.png"))))
    with pytest.raises(ValueError, match="no CMAA weights"):
        model.media_tokens("image", encoded, "What colour is it?", GenerationSettings(cmaa=True))


def test_preset_loads_cmaa_and_it_changes_the_media_tokens(tmp_path, caplog):
    from core.media import load_image
    from core.presets import get_preset

    cmaa = trained_like(width=576)
    save_checkpoint(cmaa, tmp_path / "image_cmaa.safetensors", cmaa.config())
    preset = get_preset("tiny", checkpoint_dir=tmp_path)
    model = preset.build(preset)
    assert "no pre-trained 3D encoder" in caplog.text  # the folder holds no points_encoder.safetensors either
    assert model.bridges["image"].cmaa is not None and model.bridges["audio"].cmaa is None
    encoded = model.encode("image", load_image(str(make_image(tmp_path / "x.png"))))
    with torch.no_grad():
        plain = model.media_tokens("image", encoded, "What colour is it?", GenerationSettings())
        fused = model.media_tokens("image", encoded, "What colour is it?", GenerationSettings(cmaa=True))
    assert plain.cmaa_weights is None
    assert fused.cmaa_weights.shape[0] == plain.tokens.shape[0]
    assert not torch.allclose(plain.tokens, fused.tokens, atol=1e-3)


def test_training_moves_only_cmaa_and_lowers_the_loss(tiny_pipeline, tmp_path):
    """A few steps on four fixed examples (every batch holds all four): the loss falls, the bridge stays put, and
    the export is the CMAA alone, tied to its bridge by sha256."""
    import json

    from safetensors.torch import save_file

    from core.model import ModalityBridge
    from core.qformer import QFormerSettings
    from train.train_config import TrainConfig
    from train.train_qformer import BridgeTrainer

    torch.manual_seed(0)
    settings = QFormerSettings(encoder_width=32, num_query_tokens=4)
    bridge_path = tmp_path / "bridge.safetensors"
    save_checkpoint(ModalityBridge(settings, 576), bridge_path, {"qformer": settings.to_dict()})
    features = tmp_path / "image.safetensors"
    save_file({"tokens": torch.randn(4, 1, 6, 32).half(), "mask": torch.ones(4, 1, 6, dtype=torch.bool)},
              str(features))
    features.with_suffix(".jsonl").write_text("".join(json.dumps({"caption": "a shape"}) + "\n" for _ in range(4)))
    instructions = tmp_path / "instructions.jsonl"
    instructions.write_text("".join(json.dumps({"sample": i, "question": f"What colour is shape {i}?",
                                                "answer": colour, "task": "colour", "accepted": [colour]}) + "\n"
                                    for i, colour in enumerate(["red", "blue", "green", "red"])))
    config = TrainConfig(modality="image", features=str(features), instructions=str(instructions),
                         out=str(tmp_path / "run"), cmaa=True, init_from=str(bridge_path), steps=4, batch_size=4,
                         lr=3e-3, warmup_steps=1, checkpoint_every=10, export=str(tmp_path / "image_cmaa.safetensors"))
    trainer = BridgeTrainer(config, llm=tiny_pipeline.model.llm, qformer_tokenizer=tiny_pipeline.model.qformer_tokenizer,
                            settings=settings)
    bridge = trainer.accelerator.unwrap_model(trainer.bridge)
    before = {k: v.clone() for k, v in bridge.state_dict().items() if not k.startswith("cmaa.")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batched backward on 2 busy shared cores spends most of its time in thread barriers
    try:
        losses = trainer.train()
    finally:
        torch.set_num_threads(threads)
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, bridge.state_dict()[k]) for k, v in before.items())
    assert bridge.cmaa.out.weight.abs().sum() > 0
    assert all(p.grad is None or not p.requires_grad for p in tiny_pipeline.model.llm.model.parameters())
    stored = json.loads((tmp_path / "image_cmaa.json").read_text())
    assert stored["bridge_sha256"] == hashlib.sha256(bridge_path.read_bytes()).hexdigest() and stored["steps"] == 4
    loaded = load_cmaa(tmp_path / "image_cmaa.safetensors", 576)
    assert torch.allclose(loaded.out.weight, bridge.cmaa.out.weight.half().float())


def test_cmaa_config_needs_a_trained_qformer_to_sit_on(tmp_path):
    from train.train_config import TrainConfig

    with pytest.raises(ValueError, match="init_from"):
        TrainConfig(modality="image", features="f", instructions="i", out="o", cmaa=True)


def test_a_cmaa_trained_on_another_bridge_is_refused(tmp_path):
    cmaa = trained_like()
    bridge = tmp_path / "image.safetensors"
    bridge.write_bytes(b"the bridge it was trained on")
    path = tmp_path / "image_cmaa.safetensors"
    save_checkpoint(cmaa, path, {**cmaa.config(), "bridge_sha256": hashlib.sha256(bridge.read_bytes()).hexdigest()})
    assert load_cmaa(path, WIDTH, bridge_file=bridge) is not None
    bridge.write_bytes(b"a retrained bridge")
    with pytest.raises(ValueError, match="another image.safetensors"):
        load_cmaa(path, WIDTH, bridge_file=bridge)
