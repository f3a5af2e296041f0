"""Prompt assembly: cue placement, canonical order, token counts per modality, history, text-only chat."""
import pytest
import torch

from core.prompt import PREFIX_CUES, MediaSlot, assemble, render_pieces


@pytest.fixture(scope="module")
def tokenizer(tiny_pipeline):
    return tiny_pipeline.model.llm.tokenizer


def _slots(pieces):
    return [p.modality for p in pieces if isinstance(p, MediaSlot)]


def test_media_follow_the_canonical_order_behind_their_cues(tokenizer):
    pieces = render_pieces("What is here?", ["image", "points", "audio", "video"], [], tokenizer)
    assert _slots(pieces) == ["audio", "video", "points", "image"]
    for i, piece in enumerate(pieces):
        if isinstance(piece, MediaSlot):
            assert pieces[i - 1].endswith(PREFIX_CUES[piece.modality])


def test_cues_can_be_switched_off(tokenizer):
    pieces = render_pieces("Q?", ["image", "audio"], [], tokenizer, prefix_cues=False)
    text = "".join(p for p in pieces if isinstance(p, str))
    assert " image: " not in text and " audio: " not in text
    assert _slots(pieces) == ["audio", "image"]


def test_text_only_chat_has_no_slots_and_keeps_history(tokenizer):
    pieces = render_pieces("And the second?", [], [("What is first?", "A cube.")], tokenizer)
    assert pieces == ["".join(pieces)]
    assert "What is first?" in pieces[0] and "A cube." in pieces[0] and pieces[0].endswith("assistant\n")


def test_vicuna_style_matches_the_reference_chat_format(tokenizer):
    pieces = render_pieces("Q?", ["image"], [], tokenizer, style="vicuna")
    assert pieces[0].endswith("USER:  image: ")
    assert pieces[-1].endswith("Q?\nASSISTANT:")


def test_assembled_sequence_has_each_modalitys_tokens_where_its_span_says(tokenizer):
    width = 8
    media = {"image": torch.full((4, width), 7.0), "video": torch.full((12, width), 9.0)}
    embed = lambda ids: torch.zeros(ids.shape[0], width)  # noqa: E731
    pieces = render_pieces("Q?", list(media), [], tokenizer)
    out = assemble(pieces, media, tokenizer, embed)
    text_tokens = sum(len(tokenizer(p, add_special_tokens=False).input_ids) for p in pieces if isinstance(p, str))
    assert out.inputs_embeds.shape == (1, text_tokens + 16, width)
    assert out.text_token_count == text_tokens
    (a, b), (c, d) = out.media_spans["video"], out.media_spans["image"]
    assert b - a == 12 and d - c == 4 and b < c
    assert (out.inputs_embeds[0, a:b] == 9.0).all() and (out.inputs_embeds[0, c:d] == 7.0).all()
    assert out.attention_mask.sum() == out.inputs_embeds.shape[1]


def test_unknown_modality_is_refused(tokenizer):
    with pytest.raises(ValueError, match="unknown modality"):
        render_pieces("Q?", ["smell"], [], tokenizer)


@pytest.mark.parametrize("style", ["chat_template", "vicuna"])
def test_a_nul_in_the_user_text_does_not_open_a_media_slot(tokenizer, style):
    pieces = render_pieces("what\x00is\x00 it", ["image"], [("a\x00b\x00", "c")], tokenizer, style=style)
    assert _slots(pieces) == ["image"]
    assert "whatis it" in "".join(p for p in pieces if isinstance(p, str))
