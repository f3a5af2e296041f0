"""Cost of the instruction optimiser on the offline preset: optimised answer time / plain answer time.

For each modality given, two questions (a short misspelled one and a request for a description) about the same
tiny-world example; plain and optimised answers alternate in the same process so both see
the same machine load; the encoder cache is warm for both. Prints one JSON object: per question the medians of
both times, their ratio (target <= 2.0), the optimiser's own step timings and answer lengths, the rewrite step
alone over the plain answer (every optimised answer needs its rewrites and then an answer, so the ratio cannot fall
much below 1 + that), and the IAS cost:
all candidates in one batched pass over the shared prefix cache, against one cached pass per candidate and against
one full forward (prefix included) per candidate; and the prefix's prefill from scratch against the pipeline's,
which starts after the cached prompt opening (system turn, first cue).

    python bench/optimizer.py [--runs 3] [--modalities image audio]
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
# Before torch loads OpenMP: with the default (spinning) wait policy, every multi-row matmul on 2 cores that other
# processes also use waits in thread barriers (7.8 ms instead of 0.27 ms for a 3 x 576 x 1536 linear here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

QUESTIONS = {
    "image": ("assets/examples/world_picture.jpg", "wat colr is teh car in this pictur?"),
    "audio": ("assets/examples/world_siren.wav", "wat kind of sound is ths?"),
    "video": ("assets/examples/world_video.mp4", "which way does teh square moov?"),
    "points": ("assets/examples/world_scene.npy", "wat objct is on teh left?"),
}
"""Misspelled questions about the tiny-world examples: the trained bridges answer them in a word or two."""
DESCRIBE = {"image": "descrbe teh picture", "audio": "descrbe wat u hear", "video": "descrbe wat happns in teh video",
            "points": "descrbe teh 3d scene"}
"""The same media with a request for a description: a longer answer, the other end of the ratio's range."""


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def ias_cost(pipeline, encoded, candidates: list[str], runs: int) -> dict:
    """Medians of: one batched pass; one cached pass per candidate; one full forward per candidate."""
    import torch

    from core.optimizer import AlignmentScorer, InstructionOptimizer
    from core.schema import GenerationSettings

    optimizer = InstructionOptimizer(pipeline.model)
    prefix = optimizer.prefix(encoded, GenerationSettings())
    llm = pipeline.model.llm
    scorer = AlignmentScorer(llm, prefix)

    def full_forwards():
        for text in candidates:
            ids = torch.tensor(llm.tokenizer(text, add_special_tokens=False).input_ids)
            with torch.inference_mode():
                llm.model(inputs_embeds=torch.cat([prefix.inputs_embeds[0], llm.embed(ids)])[None])

    batched, cached, full, prefill, prefill_after_opening = [], [], [], [], []
    for _ in range(runs):
        batched.append(timed(lambda: scorer.score(candidates))[0])
        cached.append(timed(lambda: [scorer.score([c]) for c in candidates])[0])
        full.append(timed(full_forwards)[0])
        prefill.append(timed(lambda: AlignmentScorer(llm, prefix))[0])
        prefill_after_opening.append(timed(lambda: AlignmentScorer(llm, prefix, pipeline.prefix_cache))[0])
    b, c, f, p, o = (statistics.median(x) for x in (batched, cached, full, prefill, prefill_after_opening))
    return {"prefix_prefill_s": round(p, 4), "prefix_prefill_after_cached_opening_s": round(o, 4),
            "prefill_speedup_from_cached_opening": round(p / o, 2),
            "candidates": len(candidates), "prefix_tokens": prefix.inputs_embeds.shape[1],
            "batched_s": round(b, 4), "one_by_one_cached_s": round(c, 4), "one_by_one_full_forward_s": round(f, 4),
            "speedup_vs_one_by_one_cached": round(c / b, 2), "speedup_vs_one_by_one_full_forward": round(f / b, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modalities", nargs="+", default=["image"], choices=list(QUESTIONS))
    parser.add_argument("--max-new-tokens", type=int, help="answer length limit (default: the app's)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from bench.machine import machine_record
    from core.pipeline import Pipeline
    from core.schema import AskRequest, GenerationSettings

    load_before = os.getloadavg()
    pipeline = Pipeline.from_preset("tiny")
    settings = GenerationSettings()
    if args.max_new_tokens:
        settings.max_new_tokens = args.max_new_tokens
    results = {}
    for modality, kind in ((m, k) for m in args.modalities for k in ("short", "describe")):
        path, question = QUESTIONS[modality]
        question = question if kind == "short" else DESCRIBE[modality]
        request = dict(question=question, settings=settings, **{modality: str(ROOT / path)})
        pipeline.ask(AskRequest(**request))  # warm: encoder cache, first-call overheads
        plain, optimised, traces, answers = [], [], [], []
        for _ in range(args.runs):
            seconds, result = timed(lambda: pipeline.ask(AskRequest(**request)))
            plain.append(seconds)
            answers.append(("plain", result.tokens_generated))
            seconds, result = timed(lambda: pipeline.ask(AskRequest(**request, optimize=True)))
            optimised.append(seconds)
            answers.append(("optimised", result.tokens_generated))
            traces.append(result.optimizer)
        trace = traces[-1]
        encoded = {modality: pipeline.encode_file(modality, str(ROOT / path))[0]}
        steps = {k: round(statistics.median(t.timings_s.get(k, 0.0) for t in traces), 3) for k in trace.timings_s}
        results[f"{modality}/{kind}"] = {
            "question": question,
            "plain_answer_s": round(statistics.median(plain), 3),
            "optimised_answer_s": round(statistics.median(optimised), 3),
            "ratio": round(statistics.median(optimised) / statistics.median(plain), 2),
            "optimizer_steps_s": steps,
            # the rewrites (a sequential decode of a whole question) come before any answer, so the ratio cannot
            # fall much below 1 + this
            "rewrite_over_plain": round(steps["rewrite"] / statistics.median(plain), 2),
            "answer_tokens": {kind: [n for k, n in answers if k == kind] for kind in ("plain", "optimised")},
            "final_instruction": trace.final_instruction,
            "candidates": [{"instruction": c.instruction, "ias": round(c.ias, 3), "source": c.source}
                           for c in trace.candidates],
            "ias": ias_cost(pipeline, encoded, [c.instruction for c in trace.candidates], args.runs),
        }
    print(json.dumps({
        "machine": machine_record(load_before),
        "runs": args.runs, "max_new_tokens": settings.max_new_tokens, "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
