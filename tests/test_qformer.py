"""The instruction-aware Q-Former and the projections."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, trained_state
from core.model import ModalityBridge
from core.projection import LinearProjectionBaseline
from core.qformer import InstructionAwareQFormer, QFormerSettings


def _instruction(tokenizer_ids):
    ids = torch.tensor([tokenizer_ids])
    return ids, torch.ones_like(ids)


def test_output_depends_on_the_instruction():
    torch.manual_seed(0)
    qformer = InstructionAwareQFormer(QFormerSettings(encoder_width=32, num_query_tokens=4)).eval()
    media = torch.randn(1, 10, 32)
    mask = torch.ones(1, 10, dtype=torch.bool)
    a = qformer(media, mask, *_instruction([101, 2054, 3609, 102])).query_states
    b = qformer(media, mask, *_instruction([101, 2129, 2116, 5200, 102])).query_states
    assert a.shape == (1, 4, 384)
    assert not torch.allclose(a, b, atol=1e-4)


def test_cross_attention_is_returned_per_layer_and_sums_to_one():
    qformer = InstructionAwareQFormer(QFormerSettings(encoder_width=32, num_query_tokens=4)).eval()
    media = torch.randn(3, 10, 32)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 6:] = False
    ids, text_mask = _instruction([101, 2054, 102])
    out = qformer(media, mask, ids.expand(3, -1), text_mask.expand(3, -1), output_attentions=True)
    assert out.cross_attentions.shape == (3, 2, 4, 10)
    assert torch.allclose(out.cross_attentions.sum(-1), torch.ones(3, 2, 4), atol=1e-5)
    assert out.cross_attentions[2, :, :, 6:].abs().max() < 1e-6  # padding never attended


def test_text_model_parts_stay_frozen_and_out_of_checkpoints(tmp_path):
    bridge = ModalityBridge(QFormerSettings(encoder_width=32, num_query_tokens=4), llm_width=48)
    trained = trained_state(bridge)
    assert "qformer.query_tokens" in trained
    assert not any("word_embeddings" in k or "position_embeddings" in k for k in trained)
    assert not any(".intermediate.dense." in k for k in trained)
    assert any(".intermediate_query.dense." in k for k in trained)
    path = tmp_path / "bridge.safetensors"
    save_checkpoint(bridge, path, {"encoder_width": 32})
    other = ModalityBridge(QFormerSettings(encoder_width=32, num_query_tokens=4), llm_width=48)
    assert load_checkpoint(other, path) == {"encoder_width": 32}
    assert torch.allclose(other.projection.weight, bridge.projection.weight.half().float())


def test_checkpoint_with_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "bridge.safetensors"
    save_checkpoint(ModalityBridge(QFormerSettings(encoder_width=32, num_query_tokens=4), 48), path, {})
    wrong = ModalityBridge(QFormerSettings(encoder_width=32, num_query_tokens=6), 48)
    try:
        load_checkpoint(wrong, path)
    except CheckpointError as error:
        assert "query_tokens" in str(error) and "(1, 4, 384)" in str(error)
    else:
        raise AssertionError("a mismatched checkpoint was accepted")


def test_a_missing_checkpoint_is_a_file_not_found_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="none.safetensors does not exist"):
        load_checkpoint(ModalityBridge(QFormerSettings(encoder_width=32, num_query_tokens=4), 48),
                        tmp_path / "none.safetensors")


def test_linear_baseline_pools_real_tokens_to_the_query_count():
    baseline = LinearProjectionBaseline(encoder_width=16, llm_width=24, num_tokens=4)
    tokens = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    out = baseline(tokens, mask)
    assert out.shape == (2, 4, 24)
    tokens_changed = tokens.clone()
    tokens_changed[1, 8:] = 100.0  # padding must not leak into the pooled tokens
    assert torch.allclose(baseline(tokens_changed, mask), out)


def _frames(batch=2, passes=4, tokens=6, width=32):
    torch.manual_seed(1)
    return torch.randn(batch, passes, tokens, width), torch.ones(batch, passes, tokens, dtype=torch.bool)


def test_separate_passes_give_queries_per_frame_and_frame_order_only_reorders_them():
    bridge = ModalityBridge(QFormerSettings(encoder_width=32, num_query_tokens=4), llm_width=48).eval()
    frames, mask = _frames()
    ids, text_mask = _instruction([101, 2054, 102])
    out = bridge(frames, mask, ids.expand(2, -1), text_mask.expand(2, -1), output_attentions=True)
    assert out.tokens.shape == (2, 4 * 4, 48)
    assert out.cross_attentions.shape == (2, 4, 2, 4, 6)
    reversed_out = bridge(frames.flip(1), mask, ids.expand(2, -1), text_mask.expand(2, -1)).tokens
    assert torch.allclose(reversed_out.reshape(2, 4, 4, 48).flip(1), out.tokens.reshape(2, 4, 4, 48), atol=1e-5)


def test_joint_pass_sees_every_frame_in_order_and_splits_its_attention_by_frame():
    bridge = ModalityBridge(QFormerSettings(encoder_width=32, num_query_tokens=4, joint_passes=True), 48).eval()
    frames, mask = _frames()
    ids, text_mask = _instruction([101, 2054, 102])
    out = bridge(frames, mask, ids.expand(2, -1), text_mask.expand(2, -1), output_attentions=True)
    assert out.tokens.shape == (2, 4, 48)  # one set of queries for the whole clip
    assert out.cross_attentions.shape == (2, 4, 2, 4, 6)  # (batch, frames, layers, queries, tokens per frame)
    assert torch.allclose(out.cross_attentions.sum(dim=(1, -1)), torch.ones(2, 2, 4), atol=1e-5)
    reversed_out = bridge(frames.flip(1), mask, ids.expand(2, -1), text_mask.expand(2, -1)).tokens
    assert (reversed_out - out.tokens).abs().max() > 1e-4  # the temporal code tells the frames apart
    alone = bridge(frames[1:], mask[1:], ids, text_mask).tokens
    assert torch.allclose(alone, out.tokens[1:], atol=1e-5)  # samples of a batch never mix


def test_joined_frames_differ_by_their_temporal_code_only():
    from core.encoders.positional import join_passes

    still = torch.randn(1, 1, 6, 32).expand(1, 3, 6, 32)  # the same frame three times
    joined, mask = join_passes(still, torch.ones(1, 3, 6, dtype=torch.bool))
    assert joined.shape == (1, 1, 18, 32) and mask.shape == (1, 1, 18)
    frames = joined.reshape(3, 6, 32)
    code = frames - still[0]
    assert torch.allclose(code[:, 0:1].expand(3, 6, 32), code, atol=1e-6)  # one code per frame, the same on all its tokens
    assert not torch.allclose(code[0], code[1]) and not torch.allclose(code[1], code[2])


def test_a_bridge_file_missing_a_trained_part_is_refused(tmp_path):
    """A truncated or older file must not leave the rest of the bridge at its random initialisation."""
    settings = QFormerSettings(encoder_width=32, num_query_tokens=4)
    path = tmp_path / "bridge.safetensors"
    save_checkpoint(ModalityBridge(settings, 48), path, {"trained": {"qformer": {}, "linear": {}}})
    stored = load_file(str(path))
    save_file({k: v for k, v in stored.items() if k != "projection.weight"}, str(path))
    with pytest.raises(CheckpointError, match="'projection.weight' is missing"):
        ModalityBridge(settings, 48).load_trained(path)


def test_a_bridge_without_a_trained_baseline_refuses_the_linear_projection(tmp_path):
    settings = QFormerSettings(encoder_width=32, num_query_tokens=4)
    bridge = ModalityBridge(settings, 48)
    path = tmp_path / "bridge.safetensors"
    save_checkpoint(bridge, path, {"trained": {"qformer": {}}})
    loaded = ModalityBridge(settings, 48)
    loaded.load_trained(path)
    assert torch.equal(loaded.projection.weight, bridge.projection.weight.half().float())
    assert not loaded.baseline_trained
