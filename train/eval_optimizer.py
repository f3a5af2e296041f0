"""Does the instruction optimiser help? QA accuracy with degraded questions as asked vs after optimisation.

A fixed, seeded set of tiny-world test questions is degraded three ways: vague (only the content words: "colour
chairs"), misspelled (letters dropped, swapped or doubled) and wordy (wrapped in polite filler). Each degraded
question is answered twice from the cached test features, once as asked and once through
`core.optimizer.InstructionOptimizer`; the clean question is answered too, as the reference. Answers are greedy
(8 tokens) and graded with `train.evaluate.is_correct`. The IAS of the instruction used is kept with every answer,
so the mean IAS of right and wrong answers can be compared.

    python -m train.eval_optimizer --modality image [--per-style 8] [--seed 0] [--bridge B] [--features F]
        [--instructions I] --out runs/eval/optimizer_image.json
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from core.encoders.base import EncodedMedia
from core.optimizer import InstructionOptimizer
from core.rewrite_checks import content_words
from core.schema import GenerationSettings
from train.cli_types import positive_int

STYLES = ("vague", "misspelled", "wordy")
FILLERS = (
    "Could you please, if it is not too much trouble, tell me {q}",
    "I was wondering whether you might be able to help me understand {q}",
    "Hello there! I have a small question for you, and I would really appreciate an answer: {q}",
)


def misspell(question: str, rng: random.Random) -> str:
    """Lower case; most words of four or more letters get one dropped, swapped or doubled letter."""
    words = []
    for word in question.lower().split():
        letters = [i for i, c in enumerate(word) if c.isalpha()]
        if len(letters) >= 4 and rng.random() < 0.7:
            i = rng.choice(letters[1:-1])
            edit = rng.choice(("drop", "swap", "double"))
            if edit == "drop":
                word = word[:i] + word[i + 1:]
            elif edit == "swap":
                word = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            else:
                word = word[:i] + word[i] + word[i:]
        words.append(word)
    return " ".join(words)


def degrade(question: str, style: str, rng: random.Random) -> str:
    if style == "vague":
        return " ".join(content_words(question)) or question.lower()
    if style == "misspelled":
        return misspell(question, rng)
    if style == "wordy":
        return rng.choice(FILLERS).format(q=question[0].lower() + question[1:])
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


def degraded_set(examples: list[dict], per_style: int, seed: int) -> list[dict]:
    """`per_style` distinct QA examples per style (captions left out), chosen and degraded by `seed`."""
    rng = random.Random(seed)
    qa = [e for e in examples if e["task"] != "caption"]
    chosen = rng.sample(qa, min(len(qa), per_style * len(STYLES)))
    return [dict(e, style=STYLES[i % len(STYLES)], degraded=degrade(e["question"], STYLES[i % len(STYLES)], rng))
            for i, e in enumerate(chosen)]


def sample_media(tokens: torch.Tensor, mask: torch.Tensor, index: int) -> EncodedMedia:
    """One cached sample as the encoder would give it (padding passes of shorter samples dropped)."""
    real = mask[index].any(-1)
    return EncodedMedia(tokens=tokens[index][real].float(), mask=mask[index][real])


@torch.no_grad()
def answer(model, modality: str, encoded: EncodedMedia, question: str, settings: GenerationSettings) -> str:
    from core.llm import generation_kwargs

    media = model.media_tokens(modality, encoded, question, settings).tokens
    prompt = model.build_input(question, {modality: media}, [], prefix_cues=settings.prefix_cues)
    ids = model.llm.model.generate(inputs_embeds=prompt.inputs_embeds, attention_mask=prompt.attention_mask,
                                   **generation_kwargs(settings, model.llm.tokenizer))
    return model.llm.tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def evaluate(model, modality: str, features: Path, instructions: Path, per_style: int, seed: int) -> dict:
    from train.evaluate import is_correct
    from train.features import load_features
    from train.train_qformer import load_instructions

    started = time.perf_counter()
    tokens, mask, rows = load_features(features)
    items = degraded_set(load_instructions(instructions, rows), per_style, seed)
    settings = GenerationSettings(max_new_tokens=8, repetition_penalty=1.0, seed=seed)
    optimizer = InstructionOptimizer(model)
    records = []
    for item in tqdm(items, desc=f"optimizer eval {modality}", unit="question"):
        encoded = {modality: sample_media(tokens, mask, item["sample"])}
        trace = optimizer.optimize(item["degraded"], encoded, settings)
        ias = {c.instruction: c.ias for c in trace.candidates}
        record = {"style": item["style"], "task": item["task"], "clean": item["question"],
                  "degraded": item["degraded"], "optimised": trace.final_instruction, "accepted": item["accepted"],
                  "ias_degraded": ias[item["degraded"]], "ias_optimised": ias[trace.final_instruction],
                  "optimizer_s": trace.timings_s["total"]}
        for kind in ("clean", "degraded", "optimised"):
            record[f"answer_{kind}"] = answer(model, modality, encoded[modality], record[kind], settings)
            record[f"right_{kind}"] = is_correct(record[f"answer_{kind}"], item["accepted"])
        records.append(record)
    return {"modality": modality, "features": str(features), "questions": len(records), "seed": seed,
            "accuracy": summarise(records), "ias_by_correctness": ias_by_correctness(records),
            "optimised_differs": round(sum(r["optimised"] != r["degraded"] for r in records) / len(records), 3),
            "median_optimizer_s": round(statistics.median(r["optimizer_s"] for r in records), 3),
            "seconds": round(time.perf_counter() - started, 1), "records": records}


def summarise(records: list[dict]) -> dict:
    out = {}
    for style in STYLES + ("all",):
        rows = [r for r in records if style in ("all", r["style"])]
        if rows:
            out[style] = {"n": len(rows), **{kind: round(sum(r[f"right_{kind}"] for r in rows) / len(rows), 3)
                                            for kind in ("clean", "degraded", "optimised")}}
    return out


def ias_by_correctness(records: list[dict]) -> dict:
    """Mean IAS of the instruction used, over answers that were right and over answers that were wrong."""
    values: dict[str, list[float]] = {"right": [], "wrong": []}
    for r in records:
        for kind in ("degraded", "optimised"):
            values["right" if r[f"right_{kind}"] else "wrong"].append(r[f"ias_{kind}"])
    return {k: {"n": len(v), "mean_ias": round(statistics.fmean(v), 3) if v else None} for k, v in values.items()}


def swap_bridge(model, modality: str, checkpoint: Path) -> None:
    """Put the checkpoint's bridge in place of the preset's, built with the Q-Former settings it was trained with
    (its encoder width, query count, joint passes), which need not be the preset's."""
    from core.model import ModalityBridge

    model.bridges[modality] = ModalityBridge.from_checkpoint(checkpoint, model.llm.width).eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", required=True, choices=["image", "video", "audio", "points"])
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--per-style", type=positive_int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--features", type=Path, help="default: data/features/<split>/<modality>.safetensors")
    parser.add_argument("--instructions", type=Path, help="default: data/instructions/<split>/<modality>.jsonl")
    parser.add_argument("--bridge", type=Path, help="bridge checkpoint to evaluate instead of the preset's")
    parser.add_argument("--threads", type=positive_int, default=1, help="1 is faster than 2 on busy shared cores")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from core.presets import get_preset
    from train.evaluate import bridge_config

    features = args.features or Path(f"data/features/{args.split}/{args.modality}.safetensors")
    instructions = args.instructions or Path(f"data/instructions/{args.split}/{args.modality}.jsonl")
    for path, stage in ((features, "train.features"), (instructions, "train.qa_gen")):
        if not path.is_file():
            parser.error(f"{path} does not exist; make it first (python -m {stage} ...) or name it with "
                         f"--{'features' if stage == 'train.features' else 'instructions'}")
    try:
        if args.bridge:
            bridge_config(args.bridge, args.modality, "qformer")
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    preset = get_preset("tiny")
    model = preset.build(preset)
    bridge = args.bridge or preset.checkpoint_dir / f"{args.modality}.safetensors"
    if args.bridge:
        swap_bridge(model, args.modality, args.bridge)
    result = evaluate(model, args.modality, features, instructions, args.per_style, args.seed)
    result["bridge_checkpoint"] = str(bridge) if bridge.is_file() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=2))


if __name__ == "__main__":
    main()
