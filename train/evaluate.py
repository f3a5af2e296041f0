"""Evaluate a trained bridge on a held-out split: per-property QA accuracy and captioning CIDEr.

Answers are decoded greedily from the cached test features (the same prompt as the app, built by
`train.prefix_llm`); an answer is right when one of the accepted answers (normalised: lower case, no punctuation,
no articles) appears in it as whole words. CIDEr-D uses pycocoevalcap's scorer on lower-cased, punctuation-free
captions. Results go to a JSON file; train/RESULTS.md quotes them with the command that made them.

    python -m train.evaluate --modality image --checkpoint assets/checkpoints/tiny/image.safetensors \
        [--projection linear] [--cmaa assets/checkpoints/tiny/image_cmaa.safetensors] [--no-prefix-cues] \
        [--per-property 50] --out runs/eval/image_qformer.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from train.cli_types import non_negative_int, positive_int
from train.qa_gen import normalise


def is_correct(prediction: str, accepted: list[str]) -> bool:
    """True when a normalised accepted answer occurs in the normalised prediction as a run of whole words."""
    words = normalise(prediction).split()
    for answer in accepted:
        target = normalise(answer).split()
        if target and any(words[i:i + len(target)] == target for i in range(len(words) - len(target) + 1)):
            return True
    return False


def pick_examples(examples: list[dict], per_property: int | None, seed: int) -> list[dict]:
    """Up to `per_property` examples of each task, drawn without replacement by a fixed seed."""
    by_task: dict[str, list[dict]] = {}
    for e in examples:
        by_task.setdefault(e["task"], []).append(e)
    chosen = []
    for task in sorted(by_task):
        rows = by_task[task]
        if per_property is not None and len(rows) > per_property:
            order = np.random.default_rng([seed, len(task)]).permutation(len(rows))[:per_property]
            rows = [rows[i] for i in sorted(order)]
        chosen += rows
    return chosen


def scene_groups(properties: dict) -> list[dict]:
    """The object groups of a picture or the objects of a 3D scene; none for sounds and videos (a video's moving and
    still objects are not groups a question picks from)."""
    return properties.get("groups") or (properties.get("objects") if "motion" not in properties else None) or []


def scene_size(properties: dict) -> str | None:
    """"one group" or "several groups" of objects for pictures and scenes (a question about one of several groups
    must also find the right one), None for sounds and videos, which have no groups."""
    groups = scene_groups(properties)
    if not groups:
        return None
    return "one group" if len(groups) == 1 else "several groups"


def names_another_group(prediction: str, task: str, accepted: list[str], properties: dict) -> bool:
    """True when an answer gives the asked property of a group the question did not name (a binding error: the
    colour of the circles for "What color are the squares?"), as opposed to a value no group has."""
    others = {str(g[task]) for g in scene_groups(properties) if task in g} - set(accepted)
    return any(is_correct(prediction, [value]) for value in others)


def cider(predictions: dict[int, str], references: dict[int, list[str]]) -> float:
    from pycocoevalcap.cider.cider import Cider

    score, _ = Cider().compute_score({k: [normalise(r) for r in references[k]] for k in predictions},
                                     {k: [normalise(p)] for k, p in predictions.items()})
    return float(score)


def bridge_config(checkpoint: Path, modality: str, projection: str) -> dict:
    """The bridge checkpoint's JSON config, refused before any model loads when it is missing, belongs to another
    modality or lacks the projection asked for (an untrained linear baseline would fail only mid-evaluation)."""
    config_path = Path(checkpoint).with_suffix(".json")
    if not Path(checkpoint).is_file() or not config_path.is_file():
        raise FileNotFoundError(f"{checkpoint} or its {config_path.name} does not exist; train the bridge first "
                                "(python -m train.train_qformer ...)")
    stored = json.loads(config_path.read_text())
    if stored.get("modality", modality) != modality:
        raise ValueError(f"{checkpoint} is a bridge for {stored['modality']}, not {modality}")
    if projection not in stored.get("trained", {projection: None}):
        raise ValueError(f"{checkpoint} holds no trained {projection} projection (it has "
                         f"{', '.join(sorted(stored['trained'])) or 'none'}); train it with its {projection} config")
    return stored


def evaluate(modality: str, checkpoint: Path, features: Path, instructions: Path, projection: str = "qformer",
             prefix_cues: bool = True, per_property: int | None = 50, batch_size: int = 32, seed: int = 0,
             tasks: list[str] | None = None, llm=None, qformer_tokenizer=None, cmaa: Path | None = None) -> dict:
    from core.model import ModalityBridge
    from train.features import load_features
    from train.prefix_llm import PrefixCachedLLM, PromptTemplate
    from train.frozen_models import load_qformer_tokenizer, load_tiny_llm
    from train.train_qformer import bridge_media_tokens, check_feature_modality, load_instructions

    started = time.perf_counter()
    bridge_config(checkpoint, modality, projection)
    tokens, mask, rows = load_features(features)
    check_feature_modality(rows, modality, features)
    examples = load_instructions(instructions, rows)
    unknown = sorted(set(tasks or ()) - {e["task"] for e in examples})
    if unknown:
        raise ValueError(f"{instructions} has no {', '.join(unknown)} questions; its tasks are "
                         f"{', '.join(sorted({e['task'] for e in examples}))}")
    examples = pick_examples([e for e in examples if tasks is None or e["task"] in tasks], per_property, seed)
    llm = llm or load_tiny_llm()
    qformer_tokenizer = qformer_tokenizer or load_qformer_tokenizer()
    bridge = ModalityBridge.from_checkpoint(checkpoint, llm.width)
    if cmaa is not None:
        from core.cmaa import load_cmaa

        bridge.cmaa = load_cmaa(cmaa, llm.width, bridge_file=checkpoint)  # refused if trained on another bridge
    bridge.eval()
    runner = PrefixCachedLLM(llm, PromptTemplate.for_modality(llm.tokenizer, modality, prefix_cues, "chat_template"))
    predictions: list[str] = []
    for start in tqdm(range(0, len(examples), batch_size), desc=f"eval {modality}/{projection}", unit="batch"):
        batch = examples[start:start + batch_size]
        samples = torch.tensor([e["sample"] for e in batch])
        with torch.no_grad():
            media = bridge_media_tokens(bridge, qformer_tokenizer, tokens[samples], mask[samples],
                                        [e["question"] for e in batch], projection, llm.device,
                                        cmaa_llm=llm if cmaa is not None else None)
        suffixes = [runner.template.suffix_ids(llm.tokenizer, e["question"]) for e in batch]
        longest = 32 if any(e["task"] == "caption" for e in batch) else 8
        predictions += runner.greedy_answers(media, suffixes, max_new_tokens=longest)
    per_task: dict[str, dict] = {}
    captions: dict[int, str] = {}
    references: dict[int, list[str]] = {}
    for e, prediction in zip(examples, predictions):
        if e["task"] == "caption":
            captions[len(captions)] = prediction
            references[len(references)] = e["accepted"]
            continue
        right = int(is_correct(prediction, e["accepted"]))
        task = per_task.setdefault(e["task"], {"right": 0, "total": 0})
        task["total"] += 1
        task["right"] += right
        properties = rows[e["sample"]].get("properties", {})
        size = scene_size(properties)
        if size is not None:
            split = task.setdefault("by_scene", {}).setdefault(size, {"right": 0, "total": 0, "wrong_other_group": 0})
            split["total"] += 1
            split["right"] += right
            if not right and names_another_group(prediction, e["task"], e["accepted"], properties):
                split["wrong_other_group"] += 1
    for task in per_task.values():
        for counts in [task, *task.get("by_scene", {}).values()]:
            counts["accuracy"] = round(counts["right"] / counts["total"], 4)
    result = {"modality": modality, "projection": projection, "prefix_cues": prefix_cues,
              "checkpoint": str(checkpoint), "cmaa": str(cmaa) if cmaa is not None else None,
              "features": str(features), "questions": len(examples),
              "qa": per_task, "seconds": round(time.perf_counter() - started, 1),
              "samples": [{"question": e["question"], "prediction": p, "accepted": e["accepted"]}
                          for e, p in list(zip(examples, predictions))[:: max(1, len(examples) // 20)]]}
    if captions:
        result["caption"] = {"count": len(captions), "cider": round(cider(captions, references), 4)}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", required=True, choices=["image", "video", "audio", "points"])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--features", type=Path, help="default: data/features/<split>/<modality>.safetensors")
    parser.add_argument("--instructions", type=Path, help="default: data/instructions/<split>/<modality>.jsonl")
    parser.add_argument("--projection", default="qformer", choices=["qformer", "linear"])
    parser.add_argument("--cmaa", type=Path, help="a CMAA checkpoint to switch on over the Q-Former tokens")
    parser.add_argument("--no-prefix-cues", action="store_true")
    parser.add_argument("--per-property", type=non_negative_int, default=50, help="questions per property (0: all)")
    parser.add_argument("--tasks", help="comma-separated subset of the properties (and caption) to ask about")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    features = args.features or Path(f"data/features/{args.split}/{args.modality}.safetensors")
    instructions = args.instructions or Path(f"data/instructions/{args.split}/{args.modality}.jsonl")
    try:
        result = evaluate(args.modality, args.checkpoint, features, instructions, args.projection,
                          not args.no_prefix_cues, args.per_property or None,
                          tasks=args.tasks.split(",") if args.tasks else None, cmaa=args.cmaa)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
