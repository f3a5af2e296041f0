"""Benchmark of the instructblip-7b preset on a CUDA GPU: 4-bit nf4 LLM vs fp16 LLM, one image question each.

Prints one JSON object per variant: peak GPU memory (allocated and reserved), load time, time to first token
(encode + Q-Former + prefill, encoder cache cleared first), decode tokens/s. `--markdown bench/RESULTS.md` also
appends a table. Needs CUDA and the preset's sources (hub access or a filled cache); without CUDA it says so and
exits with status 2.

    python bench/gpu_preset.py [--image PATH] [--variants nf4 fp16] [--max-new-tokens 64] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"nf4": {"quantization": "nf4", "llm_dtype": "bfloat16"},
            "fp16": {"quantization": "none", "llm_dtype": "float16"}}
QUESTION = "What is the person in the picture wearing?"


def default_image(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def run_variant(name: str, image: Path, max_new_tokens: int) -> dict:
    import torch

    from core.pipeline import Pipeline
    from core.schema import AskRequest, GenerationSettings

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        pipeline = Pipeline.from_preset("instructblip-7b", **VARIANTS[name])
        load_peak = torch.cuda.max_memory_allocated()
        request = AskRequest(question=QUESTION, image=str(image),
                             settings=GenerationSettings(max_new_tokens=max_new_tokens, repetition_penalty=1.5))
        pipeline.ask(request)  # warm-up: CUDA kernels, tokenizers
        pipeline.cache.clear()
        start = time.perf_counter()
        result = pipeline.ask(request)
        wall = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError as error:
        return {"variant": name, "error": f"out of GPU memory: {str(error).splitlines()[0]}"}
    record = {
        "variant": name, "device": torch.cuda.get_device_name(),
        "load_s": round(pipeline.load_seconds, 2),
        "peak_gpu_gib_after_load": round(load_peak / 2**30, 2),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "time_to_first_token_s": round(result.timings_s["first_token"], 3),
        "tokens_per_s": round(result.timings_s["tokens_per_s"], 1),
        "tokens": result.tokens_generated, "ask_wall_s": round(wall, 2), "answer": result.answer,
    }
    del pipeline, result
    gc.collect()
    return record


def markdown_table(records: list[dict]) -> str:
    rows = ["| variant | GPU | load s | peak GiB (reserved) | first token s | tokens/s |", "|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            rows.append(f"| {r['variant']} | | | {r['error']} | | |")
        else:
            rows.append(f"| {r['variant']} | {r['device']} | {r['load_s']} | {r['peak_gpu_gib']} "
                        f"({r['peak_gpu_reserved_gib']}) | {r['time_to_first_token_s']} | {r['tokens_per_s']} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="image to ask about (default: scikit-image's astronaut)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["nf4", "fp16"])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--markdown", type=Path, help="append a results table to this file")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu_preset.py needs a CUDA GPU: the instructblip-7b preset is measured on the GPU only "
              "(no CUDA device is visible here).", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        image = args.image or default_image(Path(folder))
        records = [run_variant(name, image, args.max_new_tokens) for name in args.variants]
    for record in records:
        print(json.dumps(record))
    if args.markdown:
        with args.markdown.open("a") as out:
            out.write(f"\n### instructblip-7b, {time.strftime('%Y-%m-%d')}, image question, "
                      f"{args.max_new_tokens} new tokens max\n\n" + markdown_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
