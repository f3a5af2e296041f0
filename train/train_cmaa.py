"""Train one modality's Cross-Modal Alignment Attention on the cached tiny-world features, everything else frozen.

The trained bridge (Q-Former + projection) of the modality gives the media tokens; CMAA fuses them with the
question's LLM token embeddings; the loss is the answer loss of `train.prefix_llm` (answer tokens only, constant
prompt prefix cached), on the same features and instruction file as the Q-Former training. Only CMAA's fully
connected layers get gradients. `--eval` then answers held-out questions with and without CMAA (the ablation in
train/RESULTS.md).

    python -m train.train_cmaa --modality image [--steps 60] [--eval-per-property 20] \
        [--out assets/checkpoints/tiny/image_cmaa.safetensors]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import torch

from core.checkpoints import load_checkpoint, save_checkpoint
from core.cmaa import CrossModalAlignmentAttention
from core.model import ModalityBridge
from core.qformer import QFormerSettings


class FrozenBridgeWithCmaa:
    """A trained bridge (frozen), the frozen LLM with its prompt prefix cached, and the CMAA being trained."""

    def __init__(self, modality: str, bridge_path: Path, prefix_cues: bool = True, hidden: Optional[int] = None,
                 llm=None, qformer_tokenizer=None) -> None:
        from train.prefix_llm import PrefixCachedLLM, PromptTemplate
        from train.train_qformer import _load_qformer_tokenizer, _load_tiny_llm

        if not Path(bridge_path).is_file():
            raise FileNotFoundError(f"{bridge_path} does not exist: train the {modality} Q-Former first "
                                    f"(python -m train.train_qformer)")
        self.modality = modality
        self.llm = llm or _load_tiny_llm()
        self.qformer_tokenizer = qformer_tokenizer or _load_qformer_tokenizer()
        stored = json.loads(Path(bridge_path).with_suffix(".json").read_text())
        self.bridge = ModalityBridge(QFormerSettings(**stored["qformer"]), self.llm.width)
        load_checkpoint(self.bridge, bridge_path)
        self.bridge.eval().requires_grad_(False)
        self.cmaa = CrossModalAlignmentAttention(self.llm.width, hidden)
        self.runner = PrefixCachedLLM(self.llm, PromptTemplate.for_modality(self.llm.tokenizer, modality,
                                                                            prefix_cues, "chat_template"))

    def instruction_batch(self, questions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The questions' LLM token embeddings, right-padded (B, L, W), and the mask of real tokens (B, L)."""
        tokenizer = self.llm.tokenizer
        ids = [tokenizer(q, add_special_tokens=False).input_ids for q in questions]
        longest = max(len(i) for i in ids)
        padded = torch.full((len(ids), longest), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.bool)
        for row, seq in enumerate(ids):
            padded[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = True
        with torch.no_grad():
            return self.llm.embed(padded).float(), mask.to(self.llm.device)

    def media_tokens(self, tokens: torch.Tensor, mask: torch.Tensor, questions: list[str],
                     use_cmaa: bool = True) -> torch.Tensor:
        """(B, queries, W) for cached features: the frozen bridge, then CMAA when `use_cmaa`."""
        from train.train_qformer import bridge_media_tokens

        with torch.no_grad():
            media = bridge_media_tokens(self.bridge, self.qformer_tokenizer, tokens, mask, questions, "qformer",
                                        self.llm.device)
        if not use_cmaa:
            return media
        text, text_mask = self.instruction_batch(questions)
        return self.cmaa(media, text, text_mask)[0]

    def answer_ids(self, answer: str) -> torch.Tensor:
        tokenizer = self.llm.tokenizer
        return torch.tensor(tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id])

    def loss(self, tokens: torch.Tensor, mask: torch.Tensor, examples: list[dict]) -> torch.Tensor:
        questions = [e["question"] for e in examples]
        media = self.media_tokens(tokens, mask, questions)
        suffixes = [self.runner.template.suffix_ids(self.llm.tokenizer, q) for q in questions]
        return self.runner.answer_loss(media, suffixes, [self.answer_ids(e["answer"]) for e in examples])


def train(model: FrozenBridgeWithCmaa, features: Path, instructions: Path, steps: int, batch_size: int, lr: float,
          seed: int, max_minutes: Optional[float] = None) -> list[float]:
    """AdamW on CMAA's layers only, warm-up then cosine; returns the per-step losses."""
    from train.features import load_features
    from train.train_qformer import _warmup_cosine, example_indices, load_instructions

    tokens, mask, rows = load_features(features)
    examples = load_instructions(instructions, len(rows))
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.cmaa.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(max(1, steps // 10), steps))
    model.cmaa.train()
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(steps):
        batch = [examples[i] for i in example_indices(seed, len(examples), step * batch_size, batch_size)]
        samples = torch.tensor([e["sample"] for e in batch])
        loss = model.loss(tokens[samples], mask[samples], batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.cmaa.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        minutes = (time.perf_counter() - started) / 60
        print(f"step {step + 1}/{steps} loss {losses[-1]:.4f} {minutes:.1f} min", flush=True)
        if max_minutes is not None and minutes >= max_minutes:
            print(f"stopping after {minutes:.1f} min (--max-minutes)", flush=True)
            break
    model.cmaa.eval()
    return losses


@torch.no_grad()
def ablation(model: FrozenBridgeWithCmaa, features: Path, instructions: Path, per_property: int,
             seed: int) -> dict:
    """QA accuracy per property with and without CMAA on the same held-out questions (greedy, 8 tokens)."""
    from train.evaluate import is_correct, pick_examples
    from train.features import load_features
    from train.train_qformer import load_instructions

    tokens, mask, rows = load_features(features)
    examples = [e for e in pick_examples(load_instructions(instructions, len(rows)), per_property, seed)
                if e["task"] != "caption"]
    result: dict[str, dict] = {}
    for use_cmaa in (False, True):
        per_task: dict[str, dict] = {}
        for start in range(0, len(examples), 16):
            batch = examples[start:start + 16]
            samples = torch.tensor([e["sample"] for e in batch])
            questions = [e["question"] for e in batch]
            media = model.media_tokens(tokens[samples], mask[samples], questions, use_cmaa=use_cmaa)
            suffixes = [model.runner.template.suffix_ids(model.llm.tokenizer, q) for q in questions]
            for e, answer in zip(batch, model.runner.greedy_answers(media, suffixes, max_new_tokens=8)):
                task = per_task.setdefault(e["task"], {"right": 0, "total": 0})
                task["total"] += 1
                task["right"] += int(is_correct(answer, e["accepted"]))
        right, total = sum(t["right"] for t in per_task.values()), sum(t["total"] for t in per_task.values())
        result["with_cmaa" if use_cmaa else "without_cmaa"] = {
            "accuracy": round(right / total, 4), "questions": total,
            "per_task": {k: round(v["right"] / v["total"], 4) for k, v in sorted(per_task.items())}}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", required=True, choices=["image", "video", "audio", "points"])
    parser.add_argument("--bridge", type=Path, help="default: assets/checkpoints/tiny/<modality>.safetensors")
    parser.add_argument("--out", type=Path, help="default: assets/checkpoints/tiny/<modality>_cmaa.safetensors "
                        "(the JSON beside it records which bridge it was trained on, with its sha256)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, help="CMAA hidden width (default: the LLM width)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--eval-per-property", type=int, default=0, help="ablation questions per property (0: none)")
    parser.add_argument("--threads", type=int, default=1, help="1 is faster than 2 on busy shared cores")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoints = Path("assets/checkpoints/tiny")
    bridge = args.bridge or checkpoints / f"{args.modality}.safetensors"
    out = args.out or checkpoints / f"{args.modality}_cmaa.safetensors"
    model = FrozenBridgeWithCmaa(args.modality, bridge, hidden=args.hidden)
    data = {split: (Path(f"data/features/{split}/{args.modality}.safetensors"),
                    Path(f"data/instructions/{split}/{args.modality}.jsonl")) for split in ("train", "test")}
    started = time.perf_counter()
    losses = train(model, *data["train"], args.steps, args.batch_size, args.lr, args.seed, args.max_minutes)
    window = max(1, min(10, len(losses) // 3))
    config = {**model.cmaa.config(), "modality": args.modality, "bridge": str(bridge),
              "bridge_sha256": hashlib.sha256(Path(bridge).read_bytes()).hexdigest(), "steps": len(losses),
              "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
              "loss_first": round(sum(losses[:window]) / window, 4),
              "loss_last": round(sum(losses[-window:]) / window, 4),
              "train_minutes": round((time.perf_counter() - started) / 60, 2)}
    save_checkpoint(model.cmaa, out, config)
    if args.eval_per_property:
        config["ablation"] = ablation(model, *data["test"], args.eval_per_property, args.seed)
        out.with_suffix(".json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    print(json.dumps(config, indent=2))


if __name__ == "__main__":
    main()
