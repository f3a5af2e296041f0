"""Captions -> instruction data, the paper's two ways: template questions from the properties record, and
LLM-generated question/answer pairs kept only when an LLM round trip gives the answer back.

The LLM round trip follows the reference (which asked flan-t5-xxl), by default with the tiny preset's LLM,
SmolLM2-135M (--llm picks another), its three steps written as few-shot text completions (ANSWER_PROMPT,
QUESTION_PROMPT, ROUND_TRIP_PROMPT): the 135M model kept no pair at all with the reference's instructions in a chat
turn, since it echoes the caption or loops.
  1. answer word:  a word of the caption that a question could have as its answer;
  2. question:     a question about the caption whose answer is that word;
  3. round trip:   answer the question from the caption; keep the pair when the fuzzy ratio with the answer > 90.
Each step's count is written to `<out>.llm_report.json`.

Output: one JSON line per example, {"sample", "sample_digest", "question", "answer", "task", "accepted"}; `sample`
indexes the split's manifest (and so the cached features' rows), `sample_digest` is that row's `row_digest`.

    python -m train.qa_gen --split train --modality image [--llm-captions 100 [--llm lmsys/vicuna-7b-v1.1
        --llm-dtype bfloat16 --llm-quantization nf4]]
"""
from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_output
from train.cli_types import non_negative_int, positive_int
from train.templates import caption_prompt, template_qa
from train.world.records import SPLITS, row_digest, write_jsonl

FEW_SHOT = (
    ("two small green balls at the top", "green", "What color are the balls?"),
    ("a dog barks three times", "three", "How many times does the dog bark?"),
    ("a large blue car", "large", "How big is the car?"),
    ("a red kite and a yellow sun", "kite", "What is red?"),
)
"""(caption, answer word, question) examples of no modality in particular, each asking another kind of thing: the
135M model copies the examples' question forms, and one form alone ("What object is on the left?") became the
question of almost every caption."""
ANSWER_PROMPT = ("Pick one word of the text that a question about it could have as its answer.\n"
                 + "".join(f"Text: {c}\nWord: {w}\n" for c, w, _ in FEW_SHOT) + "Text: {caption}\nWord:")
QUESTION_PROMPT = ("Write a question about the text whose answer is the given word.\n"
                   + "".join(f"Text: {c}\nWord: {w}\nQuestion: {q}\n" for c, w, q in FEW_SHOT)
                   + "Text: {caption}\nWord: {answer}\nQuestion:")
ROUND_TRIP_PROMPT = ("Answer the question about the text with one word.\n"
                     + "".join(f"Text: {c}\nQuestion: {q}\nAnswer: {w}\n" for c, w, q in FEW_SHOT)
                     + "Text: {caption}\nQuestion: {question}\nAnswer:")
"""The three steps as few-shot text completions."""
FUZZY_THRESHOLD = 90


TEMPLATE_SOURCE = "tiny-world"
"""Only the tiny world's records carry the properties the templates ask about; real data sets have captions only."""


def has_template_properties(row: dict) -> bool:
    return row.get("source", TEMPLATE_SOURCE) == TEMPLATE_SOURCE


def template_examples(rows: list[dict], modality: str, seed: int, phrasings: int = 2) -> list[dict]:
    """Every template pair of every tiny-world sample (`phrasings` random paraphrase draws, duplicates dropped),
    plus one captioning example per sample (any source) whose answer is the caption."""
    examples = []
    for index, row in enumerate(rows):
        if has_template_properties(row):
            examples += _template_pairs(index, row, modality, seed, phrasings)
        rng = np.random.default_rng([seed, index, phrasings])
        examples.append({"sample": index, "question": caption_prompt(modality, rng), "answer": row["caption"],
                         "task": "caption", "accepted": list(row.get("captions") or [row["caption"]])})
    return examples


def _template_pairs(index: int, row: dict, modality: str, seed: int, phrasings: int) -> list[dict]:
    examples = []
    seen = set()
    for draw in range(phrasings):
        rng = np.random.default_rng([seed, index, draw])
        for pair in template_qa(modality, row["properties"], rng):
            if pair.question in seen:
                continue
            seen.add(pair.question)
            examples.append({"sample": index, "question": pair.question, "answer": pair.answer,
                             "task": pair.property, "accepted": list(pair.accepted)})
    return examples + generic_object_examples(index, modality, row["properties"])


GENERIC_COLOUR_QUESTIONS = {False: ("What color is the object?", "What colour is the object?"),
                             True: ("What color are the objects?", "What colour are the objects?")}


def generic_object_examples(index: int, modality: str, properties: dict) -> list[dict]:
    """Colour questions that name no shape ("What color is the object?") for images of one object group, the way
    people ask about a picture they have not described yet."""
    groups = properties.get("groups") or []
    if modality != "image" or len(groups) != 1:
        return []
    colour = groups[0]["colour"]
    return [{"sample": index, "question": q, "answer": colour, "task": "colour", "accepted": [colour]}
            for q in GENERIC_COLOUR_QUESTIONS[groups[0]["count"] > 1]]


def normalise(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the reference's answer normalisation)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def first_content_word(text: str) -> str:
    """The reply's first word that is not an article: the small LLM tends to echo the caption's opening words."""
    words = normalise(text).split()
    return words[0] if words else ""


class CompletionGenerator:
    """Batched greedy text completions with the frozen LLM (no chat turn), each cut at its first line break."""

    def __init__(self, llm, batch_size: int = 16) -> None:
        self.llm = llm
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        from core.llm import greedy_batch

        ids = [self.llm.tokenizer(p, return_tensors="pt").input_ids[0] for p in prompts]  # with a BOS where it has one
        texts = greedy_batch(self.llm, [self.llm.embed(row) for row in ids], max_new_tokens, self.batch_size,
                             strip=False)
        return [text.split("\n")[0].strip() for text in texts]  # a completion that starts a new line says nothing


def llm_round_trip(rows: list[dict], indices: list[int], generate: CompletionGenerator) -> tuple[list[dict], dict]:
    """The three LLM steps on the captions of `rows[indices]`; returns kept examples and per-step counts."""
    from rapidfuzz import fuzz

    captions = [rows[i]["caption"] for i in indices]
    report = {"captions": len(captions)}
    answers = [first_content_word(a)
               for a in generate([ANSWER_PROMPT.format(caption=c) for c in captions], max_new_tokens=6)]
    usable = [k for k, a in enumerate(answers) if a and normalise(a) and normalise(a) in normalise(captions[k])]
    report["answer_words_found_in_caption"] = len(usable)
    questions = generate([QUESTION_PROMPT.format(caption=captions[k], answer=answers[k]) for k in usable],
                         max_new_tokens=24)
    asked = [(k, q) for k, q in zip(usable, questions) if q.endswith("?") and normalise(answers[k]) not in normalise(q)]
    report["questions_well_formed"] = len(asked)
    replies = generate([ROUND_TRIP_PROMPT.format(caption=captions[k], question=q) for k, q in asked],
                       max_new_tokens=8)
    kept = []
    for (k, question), reply in zip(asked, replies):
        score = fuzz.ratio(normalise(reply), normalise(answers[k]))
        if score > FUZZY_THRESHOLD:
            kept.append({"sample": indices[k], "question": question, "answer": answers[k], "task": "llm_qa",
                         "accepted": [answers[k]], "round_trip": reply, "fuzzy": round(score, 1)})
    report["round_trip_kept"] = len(kept)
    report["first_attempts"] = [{"caption": captions[k], "answer": answers[k], "question": q}
                                for k, q in list(zip(usable, questions))[:8]]
    report["first_round_trips"] = [{"question": q, "answer": answers[k], "reply": r}
                                   for (k, q), r in list(zip(asked, replies))[:8]]
    return kept, report


def round_trip_llm(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The LLM named by --llm (default: the tiny preset's) in --llm-dtype and --llm-quantization; one that cannot
    load is a usage error."""
    from core.llm import load_llm
    from core.presets.tiny import tiny_llm_folder

    source = args.llm or tiny_llm_folder()
    try:
        return load_llm(source, dtype=args.llm_dtype, quantization=args.llm_quantization)
    except (OSError, ValueError, ImportError) as error:
        parser.error(f"cannot load --llm {source}: {(str(error) or type(error).__name__).splitlines()[0]}")


def main(argv: list[str] | None = None) -> None:
    from train.features import manifest_rows

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/world"))
    parser.add_argument("--out", type=Path, default=Path("data/instructions"))
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--modality", required=True, choices=["image", "video", "audio", "points"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phrasings", type=non_negative_int, default=2, help="paraphrase draws per sample")
    parser.add_argument("--llm-captions", type=non_negative_int, default=0,
                        help="run the LLM round trip on the first N captions (0: templates only)")
    parser.add_argument("--llm", help="Hugging Face causal LM (hub id or folder) for the round trip (default: the "
                                      "tiny preset's SmolLM2-135M)")
    parser.add_argument("--llm-dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--llm-quantization", choices=["none", "nf4"], default="none")
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    if not args.llm_captions and (args.llm or args.llm_quantization != "none" or args.llm_dtype != "float32"):
        parser.error("--llm, --llm-dtype and --llm-quantization choose the round trip's LLM; add --llm-captions N")
    torch.set_num_threads(args.threads)
    try:
        rows = manifest_rows(args.data, args.split, args.modality)
    except FileNotFoundError as error:
        parser.error(str(error))
    examples = template_examples(rows, args.modality, args.seed, args.phrasings)
    target = args.out / args.split / f"{args.modality}.jsonl"
    tasks: dict[str, int] = {}
    for e in examples:
        tasks[e["task"]] = tasks.get(e["task"], 0) + 1
    untemplated = sum(not has_template_properties(row) for row in rows)
    print(f"{len(examples)} template/caption examples for {len(rows)} samples: {tasks}"
          + (f"; {untemplated} samples without tiny-world properties get caption examples only (no templates)"
             if untemplated else ""))
    if args.llm_captions:
        indices = list(range(min(args.llm_captions, len(rows))))
        kept, report = llm_round_trip(rows, indices, CompletionGenerator(round_trip_llm(parser, args)))
        write_jsonl(target.with_suffix(".llm.jsonl"), kept)
        with atomic_output(target.with_suffix(".llm_report.json")) as partial:
            partial.write_text(json.dumps(report, indent=2) + "\n")
        print("LLM round trip:", report)
        examples += kept
    for example in examples:  # lets training refuse features cached from another manifest
        example["sample_digest"] = row_digest(rows[example["sample"]])
    write_jsonl(target, examples)
    print(target)


if __name__ == "__main__":
    main()
