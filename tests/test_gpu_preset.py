"""The instructblip-7b preset: description, when it is offered, its 4-bit LLM path, and a full build on the CPU
from tiny local stand-ins for every source (InstructBLIP folder, LLM, BEATs, ULIP-2, X-InstructBLIP files)."""
from __future__ import annotations

import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.presets import available_presets, get_preset
from core.presets.instructblip_7b import NAME, SOURCE_OPTIONS, instructblip_7b_preset, xinstructblip_qformer
from core.qformer import QFormerSettings
from reference_checkpoints import (TINY_BEATS_CFG, TINY_ULIP, SmallQFormer, beats_reference_state,
                                   ulip_reference_state, xinstructblip_state)

LLM_WIDTH = 64
WORDS = [f"w{i}" for i in range(40)] + ["what", "is", "this", "image", "audio", "video", "3d", ":", "user",
                                        "assistant", "describe", "the", "a"]


@pytest.fixture(autouse=True)
def no_source_variables(monkeypatch):
    for env, _ in SOURCE_OPTIONS.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("XMODAL_FORCE_GPU_PRESET", raising=False)


def word_tokenizer(special: dict[str, str], words: list[str]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(list(special.values()) + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=special["unk_token"]))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)


def tiny_llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=3 + len(WORDS), hidden_size=LLM_WIDTH, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                       bos_token_id=1, eos_token_id=2, pad_token_id=2)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    from transformers import LlamaForCausalLM

    folder = tmp_path_factory.mktemp("llm")
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config()).save_pretrained(folder)
    word_tokenizer({"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}, WORDS).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_instructblip(tmp_path_factory) -> Path:
    """A `save_pretrained` InstructBLIP folder, sharded small so that LLM-only shards exist."""
    from transformers import (InstructBlipConfig, InstructBlipForConditionalGeneration, InstructBlipQFormerConfig,
                              InstructBlipVisionConfig)

    folder = tmp_path_factory.mktemp("instructblip")
    vision = InstructBlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      image_size=32, patch_size=8)
    qformer = InstructBlipQFormerConfig(vocab_size=60, hidden_size=48, num_hidden_layers=2, num_attention_heads=12,
                                        intermediate_size=96, cross_attention_frequency=2, encoder_hidden_size=32)
    config = InstructBlipConfig(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                                text_config=tiny_llama_config().to_dict(), num_query_tokens=4)
    torch.manual_seed(1)
    InstructBlipForConditionalGeneration(config).save_pretrained(folder, max_shard_size="150KB")
    word_tokenizer({"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"},
                   WORDS).save_pretrained(folder / "qformer_tokenizer")
    return folder


SMALL_AUDIO = SmallQFormer(encoder_width=TINY_BEATS_CFG["encoder_embed_dim"], llm_width=LLM_WIDTH)
SMALL_POINTS = SmallQFormer(encoder_width=TINY_ULIP["output_width"], llm_width=LLM_WIDTH)
SMALL_QFORMER = QFormerSettings(encoder_width=0, num_query_tokens=SMALL_AUDIO.queries, hidden_size=SMALL_AUDIO.hidden,
                                num_layers=12, num_heads=12, intermediate_size=SMALL_AUDIO.intermediate,
                                cross_attention_frequency=2, vocab_size=SMALL_AUDIO.vocab, init_from_text_model=False)


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory) -> dict[str, Path]:
    from core.encoders.pointbert import PointBERTConfig

    folder = tmp_path_factory.mktemp("reference")
    files = {"beats": folder / "BEATs_iter3_plus_AS2M.pt", "audio_qformer": folder / "audio_qformer.pth",
             "ulip2": folder / "ulip2_pointbert.pt", "points_qformer": folder / "pc_qformer.pth"}
    torch.save({"cfg": TINY_BEATS_CFG, "model": beats_reference_state(TINY_BEATS_CFG)}, files["beats"])
    torch.save({"model": xinstructblip_state("audio", SMALL_AUDIO)}, files["audio_qformer"])
    torch.save({"state_dict": ulip_reference_state()}, files["ulip2"])
    torch.save({"model": xinstructblip_state("pc", SMALL_POINTS)}, files["points_qformer"])
    files["pointbert_config"] = PointBERTConfig(num_groups=32, group_size=16, group_width=TINY_ULIP["group_width"],
                                                width=TINY_ULIP["width"], depth=TINY_ULIP["depth"],
                                                num_heads=TINY_ULIP["heads"], output_width=TINY_ULIP["output_width"])
    return files


def test_preset_describes_a_4bit_cuda_setup():
    preset = get_preset(NAME)
    assert (preset.quantization, preset.llm_dtype, preset.requires_cuda) == ("nf4", "bfloat16", True)
    assert (preset.prompt_style, preset.num_points, preset.audio_segments) == ("vicuna", 8192, 2)
    assert preset.options["llm"] == "lmsys/vicuna-7b-v1.1"
    assert preset.options["instructblip"] == "Salesforce/instructblip-vicuna-7b"
    assert preset.options["audio_qformer"] is None and preset.options["ulip2"] is None
    reference = xinstructblip_qformer(768)
    assert (reference.num_query_tokens, reference.hidden_size, reference.num_layers, reference.num_heads,
            reference.intermediate_size, reference.cross_attention_frequency, reference.vocab_size) == \
        (32, 768, 12, 12, 3072, 2, 30523)


def test_sources_come_from_environment_then_arguments(monkeypatch):
    monkeypatch.setenv("XMODAL_AUDIO_QFORMER", "/models/audio_qformer.pth")
    monkeypatch.setenv("XMODAL_ULIP2", "/models/ulip2.pt")
    monkeypatch.setenv("XMODAL_LLM", "my/llm")
    preset = instructblip_7b_preset(llm="other/llm", quantization="none")
    assert preset.options["audio_qformer"] == "/models/audio_qformer.pth"
    assert preset.options["ulip2"] == "/models/ulip2.pt"
    assert preset.options["llm"] == "other/llm" and preset.quantization == "none"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_offered_only_with_cuda_or_when_forced(monkeypatch):
    assert NAME not in available_presets()
    with pytest.raises(ValueError, match="needs a CUDA GPU .* XMODAL_FORCE_GPU_PRESET=1"):
        get_preset(NAME).build(get_preset(NAME))
    monkeypatch.setenv("XMODAL_FORCE_GPU_PRESET", "1")
    assert NAME in available_presets()


def test_audio_needs_both_files(monkeypatch):
    monkeypatch.setenv("XMODAL_FORCE_GPU_PRESET", "1")
    preset = instructblip_7b_preset(beats="/models/BEATs.pt")
    with pytest.raises(ValueError, match="audio needs both XMODAL_AUDIO_QFORMER and XMODAL_BEATS; "
                                         "XMODAL_AUDIO_QFORMER is not set"):
        preset.build(preset)


def test_llm_loads_in_4bit_on_cpu(tiny_llm):
    import bitsandbytes as bnb

    from core.llm import load_llm

    llm = load_llm(tiny_llm, dtype="bfloat16", quantization="nf4")
    projection = llm.model.model.layers[0].self_attn.q_proj
    assert isinstance(projection, bnb.nn.Linear4bit) and projection.weight.quant_state.quant_type == "nf4"
    ids = llm.tokenizer("what is this image", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = llm.model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], tiny_llama_config().vocab_size) and torch.isfinite(logits).all()


def test_only_shards_with_vision_and_qformer_are_read(tiny_instructblip):
    import json

    from core.salesforce_instructblip import part_files

    weight_map = json.loads((tiny_instructblip / "model.safetensors.index.json").read_text())["weight_map"]
    chosen = {p.name for p in part_files(str(tiny_instructblip))}
    llm_only = {s for s in set(weight_map.values())
                if all(k.startswith("language_model.") for k, v in weight_map.items() if v == s)}
    assert llm_only and chosen and not chosen & llm_only
    assert {weight_map["qformer.embeddings.layernorm.weight"], weight_map["query_tokens"]} <= chosen


@pytest.fixture(scope="module")
def built(tiny_llm, tiny_instructblip, reference_files):
    """The whole preset built on the CPU from the tiny sources (4-bit LLM through bitsandbytes' CPU backend)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XMODAL_FORCE_GPU_PRESET", "1")
    patch.setenv("XMODAL_AUDIO_QFORMER", str(reference_files["audio_qformer"]))
    patch.setenv("XMODAL_BEATS", str(reference_files["beats"]))
    preset = get_preset(NAME, llm=str(tiny_llm), instructblip=str(tiny_instructblip),
                        points_qformer=str(reference_files["points_qformer"]), ulip2=str(reference_files["ulip2"]),
                        qformer_settings=SMALL_QFORMER, pointbert_config=reference_files["pointbert_config"])
    try:
        yield preset, preset.build(preset)
    finally:
        patch.undo()


def test_built_model_has_every_modality_with_the_right_weights(built, tiny_instructblip, reference_files):
    from safetensors import safe_open

    preset, model = built
    assert sorted(model.modalities) == ["audio", "image", "points", "video"]
    assert model.bridges["video"] is model.bridges["image"]
    index = __import__("json").loads((tiny_instructblip / "model.safetensors.index.json").read_text())["weight_map"]
    with safe_open(str(tiny_instructblip / index["query_tokens"]), framework="pt") as handle:
        assert torch.equal(model.bridges["image"].qformer.query_tokens, handle.get_tensor("query_tokens"))
    with safe_open(str(tiny_instructblip / index["vision_model.post_layernorm.weight"]), framework="pt") as handle:
        assert torch.equal(model.bridges["image"].qformer.encoder_norm.weight,
                           handle.get_tensor("vision_model.post_layernorm.weight"))
    audio_state = torch.load(reference_files["audio_qformer"], weights_only=True)["model"]
    assert torch.equal(model.bridges["audio"].projection.weight, audio_state["audio_llm_proj.weight"])
    assert not any(p.requires_grad for p in model.parameters())


def test_encoder_tokens_before_the_final_layernorm(built):
    _, model = built
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    encoded = model.encode("image", image)
    assert encoded.tokens.shape == (1, 1 + 4 * 4, 32) and encoded.grid_hw == (4, 4)
    vision = model.encoder_modules["image"].vision
    pixels = model.encoder_modules["image"].preprocess([image])
    with torch.no_grad():
        final = vision(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(vision.post_layernorm(encoded.tokens), final)


def test_every_modality_reaches_the_llm(built):
    from core.schema import GenerationSettings

    _, model = built
    settings = GenerationSettings(max_new_tokens=3)
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    t = np.arange(16000 * 3) / 16000
    media = {"image": frames[0], "video": types.SimpleNamespace(frames=frames),
             "audio": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
             "points": types.SimpleNamespace(xyz=rng.normal(size=(1024, 3)).astype(np.float32), rgb=None)}
    expected_tokens = {"image": 4, "video": 3 * 4, "audio": 2 * 4, "points": 4}
    tokens = {}
    for modality, item in media.items():
        out = model.media_tokens(modality, model.encode(modality, item), "describe the image", settings,
                                 output_attentions=True)
        assert out.tokens.shape == (expected_tokens[modality], LLM_WIDTH), modality
        assert out.cross_attentions.device.type == "cpu"
        tokens[modality] = out.tokens
    prompt = model.build_input("what is this", tokens, history=[])
    assert all(prompt.media_spans[m][1] - prompt.media_spans[m][0] == n for m, n in expected_tokens.items())
    with torch.no_grad():
        generated = model.llm.model.generate(inputs_embeds=prompt.inputs_embeds,
                                             attention_mask=prompt.attention_mask, max_new_tokens=3, do_sample=False)
    assert generated.shape[-1] >= 1


def test_pipeline_answers_from_files_with_attention_maps(built, tmp_path):
    import soundfile as sf

    from core.pipeline import Pipeline
    from core.schema import AskRequest, GenerationSettings

    preset, model = built
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    t = np.arange(16000 * 3) / 16000
    sf.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    np.save(tmp_path / "p.npy", rng.normal(size=(9000, 3)).astype(np.float32))
    result = Pipeline(model, preset).ask(AskRequest(
        question="what is this", image=str(tmp_path / "a.png"), audio=str(tmp_path / "a.wav"),
        points=str(tmp_path / "p.npy"), settings=GenerationSettings(max_new_tokens=3)))
    assert result.tokens_generated >= 1 and result.timings_s["first_token"] > 0
    image = result.attention["image"]
    assert image.weights.shape == (1, 1, 4, 16)  # the [CLS] token is dropped so the map fits the patch grid
    assert image.grid_hw == (4, 4)
    assert result.attention["audio"].weights.shape == (2, 6, 4, 256)
    assert result.attention["points"].weights.shape == (1, 6, 4, 1)


def test_llm_of_another_width_is_refused(built, tiny_instructblip, tmp_path):
    from transformers import LlamaForCausalLM

    narrow = replace(tiny_llama_config(), hidden_size=32)
    LlamaForCausalLM(narrow).save_pretrained(tmp_path)
    word_tokenizer({"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}, WORDS).save_pretrained(tmp_path)
    preset = replace(built[0], quantization="none", llm_dtype="float32", options={
        **built[0].options, "llm": str(tmp_path), "audio_qformer": None, "beats": None, "points_qformer": None,
        "ulip2": None})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XMODAL_FORCE_GPU_PRESET", "1")
        with pytest.raises(ValueError, match="the image Q-Former projects to 64 but the LLM .* is 32 wide"):
            preset.build(preset)


@pytest.mark.gpu
def test_real_preset_answers_on_cuda():
    """Needs a GPU and the real sources (hub or cache): the 4-bit 7B preset answers about an image."""
    from skimage import data

    from core.pipeline import Pipeline
    from core.schema import AskRequest, GenerationSettings

    path = Path(__file__).parent / "data" / "_astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    try:
        pipeline = Pipeline.from_preset(NAME)
        result = pipeline.ask(AskRequest(question="What is the person wearing?", image=str(path),
                                         settings=GenerationSettings(max_new_tokens=20)))
    finally:
        path.unlink()
    assert result.answer
    assert torch.cuda.max_memory_allocated() < 12 * 2**30


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_benchmark_says_it_needs_cuda(capsys):
    import importlib.util

    script = Path(__file__).parents[1] / "bench" / "gpu_preset.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_preset", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_unreachable_hub_source_is_said_plainly(monkeypatch):
    from core.salesforce_instructblip import InstructBlipSourceError, part_files, read_instructblip_parts

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InstructBlipSourceError, match="cannot read 'nobody/no-such-instructblip' .* local folder"):
        read_instructblip_parts("nobody/no-such-instructblip")
    with pytest.raises(InstructBlipSourceError, match="cannot read 'nobody/no-such-instructblip/model.safetensors"):
        part_files("nobody/no-such-instructblip")
