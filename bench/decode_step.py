"""Cost of one decode step of the tiny preset's LLM: the unit that every answer, rewrite and comparison is made of.

Times single-token steps after a prompt of about 100 tokens (the optimiser's few-shot rewrite prompt), with 1 row
(an answer) and 3 rows (the optimiser's batched rewrites), with the weights in float32 (the preset's default) and
bfloat16. Prints one JSON object: the median step time of each case over several runs, and the ratios 3 rows / 1 row
and float32 / bfloat16 measured in the same process.

    python bench/decode_step.py [--runs 5] [--steps 12] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app sets it (bench/RESULTS.md, optimiser section)


def step_seconds(model, prompt_ids, rows: int, steps: int) -> float:
    """Mean seconds of `steps` greedy single-token steps after a prefill of `prompt_ids` repeated over `rows`."""
    import torch

    with torch.inference_mode():
        out = model(input_ids=prompt_ids.expand(rows, -1), use_cache=True)
        cache, token = out.past_key_values, out.logits[:, -1].argmax(-1)[:, None]
        start = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            token = out.logits[:, -1].argmax(-1)[:, None]
        return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12, help="decode steps per run")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()

    import torch

    from bench.machine import machine_record
    from core.optimizer import REWRITE_HEADER, REWRITE_QUERY
    from train.frozen_models import load_tiny_llm

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    llm = load_tiny_llm()
    prompt = REWRITE_HEADER.format(media="image") + REWRITE_QUERY.format(question="wat colr is teh car in this pictur?")
    prompt_ids = llm.tokenizer(prompt, return_tensors="pt").input_ids
    results = {}
    for dtype in ("float32", "bfloat16"):
        model = llm.model.to(getattr(torch, dtype))
        weight_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
        step_seconds(model, prompt_ids, 3, 2)  # warm: first-call allocations
        per_rows = {rows: statistics.median(step_seconds(model, prompt_ids, rows, args.steps) for _ in range(args.runs))
                    for rows in (1, 3)}
        results[dtype] = {"weights_mb": round(weight_mb), "step_ms_1_row": round(per_rows[1] * 1e3, 1),
                          "step_ms_3_rows": round(per_rows[3] * 1e3, 1),
                          "ratio_3_rows_over_1": round(per_rows[3] / per_rows[1], 2)}
    print(json.dumps({
        "machine": machine_record(load_before),
        "prompt_tokens": int(prompt_ids.shape[1]), "runs": args.runs, "steps": args.steps, "results": results,
        "float32_over_bfloat16": {
            rows: round(results["float32"][f"step_ms_{rows}"] / results["bfloat16"][f"step_ms_{rows}"], 2)
            for rows in ("1_row", "3_rows")},
    }, indent=2))


if __name__ == "__main__":
    main()
