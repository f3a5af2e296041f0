"""Latency of an image question on the offline preset, against plain `generate` of the same LLM.

Prints one JSON object: medians over several runs of time to first token (cold and warm encoder cache), decode
tokens/s of the multimodal pipeline and of plain text generation with a prompt of the same length and the same
number of new tokens, their ratio, and the encoder time on a cache hit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def make_image(folder: Path, index: int) -> str:
    """A distinct small picture per run, so 'cold' runs really miss the cache."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (224, 224), (240, 240, 240))
    ImageDraw.Draw(image).ellipse([40 + index, 60, 150 + index, 170], fill=(200, 30, 30))
    path = folder / f"bench-{index}.png"
    image.save(path)
    return str(path)


def plain_generate_seconds(llm, prompt_length: int, new_tokens: int) -> float:
    """Wall time of `generate` on a text prompt of `prompt_length` tokens, forced to `new_tokens` new tokens."""
    import torch

    text = "Describe the colours and shapes you can see in the picture in a few words please. " * 20
    ids = llm.tokenizer(text, return_tensors="pt").input_ids[:, :prompt_length]
    start = time.perf_counter()
    with torch.inference_mode():
        llm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=llm.tokenizer.pad_token_id)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    import torch

    from core.pipeline import Pipeline
    from core.schema import AskRequest, GenerationSettings

    pipeline = Pipeline.from_preset("tiny")
    settings = GenerationSettings(max_new_tokens=args.new_tokens)
    question = "Describe the picture in detail."
    cold_ttft, warm_ttft, warm_encode, pipeline_rate, plain_rate = [], [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        pipeline.ask(AskRequest(question, image=make_image(Path(folder), 99), settings=settings))  # warm-up
        for run in range(args.runs):
            image = make_image(Path(folder), run)
            cold = pipeline.ask(AskRequest(question, image=image, settings=settings))
            warm = pipeline.ask(AskRequest(question, image=image, settings=settings))
            cold_ttft.append(cold.timings_s["first_token"])
            warm_ttft.append(warm.timings_s["first_token"])
            warm_encode.append(warm.timings_s["encode_image"])
            tokens = warm.tokens_generated
            pipeline_rate.append(tokens / warm.timings_s["generate"])
            prompt = pipeline.model.build_input(question, {"image": torch.zeros(8, pipeline.model.llm.width)}, [])
            plain_rate.append(tokens / plain_generate_seconds(pipeline.model.llm, prompt.inputs_embeds.shape[1],
                                                              tokens))
    median = statistics.median
    print(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "runs": args.runs,
        "new_tokens": args.new_tokens,
        "load_s": round(pipeline.load_seconds, 3),
        "first_token_s_cold_cache": round(median(cold_ttft), 4),
        "first_token_s_cache_hit": round(median(warm_ttft), 4),
        "encoder_s_on_cache_hit": median(warm_encode),
        "decode_tokens_per_s": round(median(pipeline_rate), 2),
        "plain_generate_tokens_per_s": round(median(plain_rate), 2),
        "decode_ratio_vs_plain_generate": round(median(pipeline_rate) / median(plain_rate), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
