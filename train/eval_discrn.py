"""DisCRn accuracy of a preset: both inputs fed jointly behind their prefix cues, the caption baseline, and chance.

Methods (DESIGN section 6):
- joint: each input goes through its own Q-Former (instructed with the question) and sits behind its prefix cue in
  one LLM prompt, the paper's emergent cross-modal reasoning: no pair was ever seen in training;
- captions: the baseline: each input is captioned by its own bridge alone, then the LLM answers from the two captions;
- oracle_captions: the same with the data set's true captions, i.e. what this LLM makes of perfect captions;
- chance: 0.5 (labels are balanced).
The files may be ours (`python -m train.discrn`) or the reference's released ones (read by `train.discrn.read_discrn`);
the reference's name their inputs by id only, so `--media-root MODALITY=DIR` says where each modality's files are.
Every argument and every input file is checked before the model loads.

    python -m train.eval_discrn --pairs data/discrn/points_image.json [--limit 200] --out runs/eval/discrn_points_image.json
    python -m train.eval_discrn --pairs objaverse.json --media-root image=objaverse/images \
        --media-root points=objaverse/points --balance-labels --out runs/eval/discrn_objaverse.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from train.cli_types import positive_int
from train.discrn import MODALITY_ALIASES, PROMPT_PREFIX, DisCRnPair, answer_choice, read_discrn, score

METHODS = ("joint", "captions", "oracle_captions")
MEDIA_METHODS = ("joint", "captions")
"""The methods that read the input files (oracle_captions needs only the file's captions)."""
ORDINALS = ("First", "Second")


def joint_question(pair: DisCRnPair) -> str:
    return f"{PROMPT_PREFIX} {pair.question}"


def caption_question(pair: DisCRnPair, captions: list[str]) -> str:
    """The caption baseline's text-only prompt: each input named by its position and kind, then the question."""
    from core.optimizer import MEDIA_NAMES

    described = "\n".join(f"{ORDINALS[i]} input ({MEDIA_NAMES[m]}): {c.strip()}"
                          for i, (m, c) in enumerate(zip(pair.modalities, captions)))
    return f"{PROMPT_PREFIX}\n{described}\nQuestion: {pair.question}"


class DisCRnEvaluator:
    """Answers DisCRn pairs with a loaded pipeline; every input is encoded once (the pipeline's cache)."""

    def __init__(self, pipeline, max_new_tokens: int = 8, caption_tokens: int = 32) -> None:
        from core.schema import GenerationSettings

        self.pipeline = pipeline
        self.model = pipeline.model
        self.settings = GenerationSettings(decoding="greedy")
        self.max_new_tokens = max_new_tokens
        self.caption_tokens = caption_tokens
        self._captions: dict[tuple[str, str], str] = {}

    def _encoded(self, modality: str, path: Optional[str]):
        if not path:
            raise FileNotFoundError(f"a {modality} input has no file; pass media_roots (--media-root) for the "
                                    "reference files")
        return self.pipeline.encode_file(modality, path)[0]

    def _prompt(self, question: str, media: dict[str, torch.Tensor]) -> torch.Tensor:
        """Media in the dict's order: a pair's first input is the first the LLM sees, whatever its modality."""
        return self.model.build_input(question, media, [], prefix_cues=self.settings.prefix_cues,
                                      keep_media_order=True).inputs_embeds[0]

    def _answer(self, prompts: list[torch.Tensor], max_new_tokens: int) -> list[str]:
        from core.llm import greedy_batch

        return greedy_batch(self.model.llm, prompts, max_new_tokens)

    def joint(self, pairs: list[DisCRnPair]) -> list[str]:
        check_joint_pairs(pairs)
        prompts = []
        with torch.no_grad():
            for pair in tqdm(pairs, desc="joint prompts", unit="pair"):
                media = {m: self.model.media_tokens(m, self._encoded(m, path), pair.question, self.settings).tokens
                         for m, path in zip(pair.modalities, pair.paths)}
                prompts.append(self._prompt(joint_question(pair), media))
        return self._answer(prompts, self.max_new_tokens)

    def model_captions(self, pairs: list[DisCRnPair]) -> list[list[str]]:
        """Each distinct input captioned once by its own bridge with the modality's first captioning prompt."""
        from train.templates import caption_prompt

        todo = sorted({(m, p) for pair in pairs for m, p in zip(pair.modalities, pair.paths)} - set(self._captions))
        prompts = []
        with torch.no_grad():
            for modality, path in tqdm(todo, desc="caption prompts", unit="input"):
                instruction = caption_prompt(modality)
                tokens = self.model.media_tokens(modality, self._encoded(modality, path), instruction,
                                                 self.settings).tokens
                prompts.append(self._prompt(instruction, {modality: tokens}))
        self._captions.update(zip(todo, self._answer(prompts, self.caption_tokens)))
        return [[self._captions[(m, p)] for m, p in zip(pair.modalities, pair.paths)] for pair in pairs]

    def from_captions(self, pairs: list[DisCRnPair], captions: list[list[str]]) -> list[str]:
        prompts = [self._prompt(caption_question(pair, c), {}) for pair, c in zip(pairs, captions)]
        return self._answer(prompts, self.max_new_tokens)

    def run(self, pairs: list[DisCRnPair], methods: tuple[str, ...] = METHODS) -> dict:
        result: dict = {"pairs": len(pairs), "methods": {}}
        answers: dict[str, list[str]] = {}
        for method in methods:
            started = time.perf_counter()
            if method == "joint":
                answers[method] = self.joint(pairs)
            elif method == "captions":
                captions = self.model_captions(pairs)
                answers[method] = self.from_captions(pairs, captions)
                result["model_captions"] = [{"sample_ids": p.sample_ids, "captions": c}
                                            for p, c in list(zip(pairs, captions))[:10]]
            elif method == "oracle_captions":
                answers[method] = self.from_captions(pairs, [p.captions for p in pairs])
            else:
                raise ValueError(f"unknown method {method!r}; expected some of {METHODS}")
            summary = score(pairs, answers[method])
            summary["seconds"] = round(time.perf_counter() - started, 1)
            summary["by_question_type"] = by_question_type(pairs, answers[method])
            summary["first_share"] = round(sum(answer_choice(a, p.modalities) == 0
                                               for p, a in zip(pairs, answers[method])) / max(len(pairs), 1), 4)
            result["methods"][method] = summary
        result["methods"]["chance"] = {"accuracy": 0.5}
        result["samples"] = [{"question": p.question, "label": p.label, "captions": p.captions,
                              **{m: answers[m][i] for m in answers}}
                             for i, p in list(enumerate(pairs))[:: max(1, len(pairs) // 20)]]
        return result


def check_joint_pairs(pairs: list[DisCRnPair]) -> None:
    """The joint prompt holds one slot per modality, so a pair of two same-modality inputs cannot be asked jointly."""
    for pair in pairs:
        if pair.modalities[0] == pair.modalities[1]:
            raise ValueError(f"the joint method needs two different modalities, this pair has two "
                             f"{pair.modalities[0]} inputs ({pair.sample_ids})")


def check_input_files(pairs: list[DisCRnPair]) -> None:
    """Every input names an existing file; checked before the model loads, not when the first missing one is met."""
    unresolved = sorted({m for pair in pairs for m, path in zip(pair.modalities, pair.paths) if not path})
    if unresolved:
        raise ValueError(f"the {', '.join(unresolved)} inputs have no file: the file names its inputs by id only; "
                         f"pass {' '.join(f'--media-root {m}=DIR' for m in unresolved)}")
    absent = sorted({path for pair in pairs for path in pair.paths if not os.path.isfile(path)})
    if absent:
        raise ValueError(f"{len(absent)} input files do not exist (e.g. {', '.join(absent[:3])}); check --media-root")


def check_checkpoint_dir(folder: Path, preset: str, pairs: list[DisCRnPair]) -> None:
    """A retrained set of tiny checkpoints holds the bridge of every modality the pairs ask about (and the 3D encoder
    its points bridge was trained on); the preset would otherwise run a missing one untrained, with only a warning."""
    if preset != "tiny":
        raise ValueError(f"--checkpoint-dir replaces the tiny preset's checkpoints; the {preset} preset names its own")
    modalities = sorted({m for pair in pairs for m in pair.modalities})
    needed = [f"{m}.safetensors" for m in modalities] + (["points_encoder.safetensors"] if "points" in modalities
                                                          else [])
    absent = [name for name in needed if not (folder / name).is_file()]
    if absent:
        raise ValueError(f"{folder} lacks {', '.join(absent)}, needed for these {' and '.join(modalities)} pairs")


def by_question_type(pairs: list[DisCRnPair], answers: list[str]) -> dict[str, float]:
    grouped: dict[str, list[bool]] = {}
    for pair, answer in zip(pairs, answers):
        grouped.setdefault(pair.question_type or "?", []).append(answer_choice(answer, pair.modalities) == pair.label)
    return {name: round(sum(v) / len(v), 4) for name, v in sorted(grouped.items())}


def _methods(value: str) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in value.split(",") if m.strip())
    if not methods or not set(methods) <= set(METHODS):
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated subset of {','.join(METHODS)}")
    return methods


def _media_root(value: str) -> tuple[str, str]:
    """MODALITY=DIR; the modality may be spelt as in the reference files (pc, 3d, images)."""
    from core.schema import MODALITIES

    modality, equals, folder = value.partition("=")
    modality = MODALITY_ALIASES.get(modality.strip(), modality.strip())
    if not equals or not folder:
        raise argparse.ArgumentTypeError(f"expected MODALITY=DIR, not {value!r}")
    if modality not in MODALITIES:
        raise argparse.ArgumentTypeError(f"unknown modality {modality!r} in {value!r}; choose from "
                                         f"{', '.join(MODALITIES)} (or {', '.join(sorted(MODALITY_ALIASES))})")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{folder} is not a folder (in {value!r})")
    return modality, folder


def main(argv: list[str] | None = None) -> None:
    from core.presets import PRESETS, available_presets
    from core.presets.instructblip_7b import FORCE_ENV

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, required=True, help="a DisCRn json file (ours or the reference's)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=positive_int, help="evaluate the first N pairs only")
    parser.add_argument("--methods", type=_methods, default=METHODS,
                        help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    parser.add_argument("--media-root", type=_media_root, action="append", default=[], metavar="MODALITY=DIR",
                        help="folder of one modality's files, for the reference's files, whose entries name their "
                             "inputs by id (layouts in train.discrn.REFERENCE_LAYOUTS); repeat per modality")
    parser.add_argument("--balance-labels", action="store_true",
                        help="swap the two inputs of every entry whose label does not alternate with its position, "
                             "as the reference's loader does, so 'first' and 'second' are equally often right")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--checkpoint-dir", type=Path,
                        help="tiny preset only: score the checkpoints in this folder (<modality>.safetensors of both "
                             "inputs, points_encoder.safetensors for 3D) instead of assets/checkpoints/tiny")
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    media_roots = dict(args.media_root)
    if len(media_roots) < len(args.media_root):
        parser.error("--media-root names a modality twice")
    try:
        pairs = read_discrn(str(args.pairs), media_roots=media_roots, balance_labels=args.balance_labels)[: args.limit]
        if "joint" in args.methods:
            check_joint_pairs(pairs)
        if set(args.methods) & set(MEDIA_METHODS):
            check_input_files(pairs)
        if args.checkpoint_dir is not None:
            check_checkpoint_dir(args.checkpoint_dir, args.preset, pairs)
        if args.preset not in available_presets():
            raise ValueError(f"the {args.preset} preset needs a CUDA GPU and this machine has none "
                             f"({FORCE_ENV}=1 runs it on the CPU anyway)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    from core.pipeline import Pipeline

    overrides = {"checkpoint_dir": args.checkpoint_dir} if args.checkpoint_dir is not None else {}
    evaluator = DisCRnEvaluator(Pipeline.from_preset(args.preset, **overrides))
    result = {"file": str(args.pairs), "checkpoint_dir": str(args.checkpoint_dir) if overrides else None,
              **evaluator.run(pairs, args.methods)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "model_captions")}, indent=2))


if __name__ == "__main__":
    main()
