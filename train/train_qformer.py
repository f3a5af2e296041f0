"""Train one modality's bridge (its Q-Former + projection, the linear-projection baseline, or a CMAA on top of a
trained Q-Former) on cached features.

Encoders and LLM stay frozen; the loss is on answer tokens only; captioning and QA examples are mixed as the
instruction file mixes them. `accelerate launch` scales the same script to many GPUs (each process draws its own
batch of every step's examples); on one CPU it runs as is. Every `checkpoint_every` steps the full training state
(weights, optimizer, scheduler, RNG, step) is saved to `<out>/state`, and a rerun of the same command resumes from
it exactly: the examples of a step are a pure function of (seed, step), so nothing is repeated or skipped.

    python -m train.train_qformer --config train/configs/image_qformer.json [--steps N] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from core.atomic import atomic_output
from core.model import ModalityBridge
from core.qformer import QFormerSettings
from train.cli_types import positive_int
from train.frozen_models import load_qformer_tokenizer, load_tiny_llm
from train.train_config import TrainConfig, check_resumable, continued_ends, warmup_cosine
from train.word_targets import WORD_OBJECTIVES, caption_embedding_loss, caption_target_ids, word_target_text
from train.world.records import read_jsonl, row_digest

log = logging.getLogger("train")


def load_instructions(path: Path, rows: list[dict]) -> list[dict]:
    """The instruction examples for the cached features' `rows`, refused when they were made from another manifest
    (an index past the features, or, for files that record it, another row's digest at the same index)."""
    examples = read_jsonl(path)
    if not examples:
        raise ValueError(f"{path} holds no instruction examples")
    bad = [e for e in examples if not 0 <= e["sample"] < len(rows)]
    if bad:
        raise ValueError(f"{path}: example for sample {bad[0]['sample']} but the features hold {len(rows)}; the "
                         "features and instructions must come from the same manifest (train.features without --limit)")
    other = [e for e in examples if "sample_digest" in e and e["sample_digest"] != row_digest(rows[e["sample"]])]
    if other:
        raise ValueError(f"{path}: its examples for sample {other[0]['sample']} (and {len(other) - 1} more) were made "
                         "from another manifest row than the features'; make the features and the instructions "
                         "from the same manifest")
    return examples


def check_feature_modality(rows: list[dict], modality: str, features) -> None:
    """Refuse features cached from another modality's manifest: the run would learn them behind this modality's
    prompt cue, and its export would be loaded for the wrong encoder's inputs."""
    found = sorted({row["modality"] for row in rows if "modality" in row} - {modality})
    if found:
        raise ValueError(f"{features} holds {' and '.join(found)} features, not {modality} ones")


def example_indices(seed: int, count: int, start: int, size: int) -> list[int]:
    """Positions start..start+size of an endless stream of per-epoch shuffles (a pure function of its inputs)."""
    out = []
    for position in range(start, start + size):
        epoch, offset = divmod(position, count)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(count)[offset]))
    return out


class BridgeTrainer:
    """Holds the frozen LLM (with its prompt prefix cached), the bridge being trained and the data."""

    def __init__(self, config: TrainConfig, llm=None, qformer_tokenizer=None, settings: QFormerSettings | None = None):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from train.features import load_features
        from train.prefix_llm import PrefixCachedLLM, PromptTemplate

        self.config = config
        # the schedule counts optimizer steps: stepped by hand once per step, since accelerate's default would
        # step it once per process (N times too fast under `accelerate launch` with N processes)
        self.accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum,
                                       mixed_precision=config.mixed_precision, step_scheduler_with_optimizer=False)
        set_seed(config.seed)
        self.tokens, self.mask, self.rows = load_features(Path(config.features))
        check_feature_modality(self.rows, config.modality, config.features)
        self.examples = load_instructions(Path(config.instructions), self.rows)
        if config.train_samples is not None:
            if not 0 < config.train_samples <= len(self.rows):
                raise ValueError(f"train_samples={config.train_samples}, but {config.features} holds "
                                 f"{len(self.rows)} samples (--train-samples {len(self.rows)} trains on those)")
            self.examples = [e for e in self.examples if e["sample"] < config.train_samples]
            self.rows = self.rows[:config.train_samples]
        self.llm = llm or load_tiny_llm()
        self.llm.model.to(self.accelerator.device)
        self.qformer_tokenizer = qformer_tokenizer or load_qformer_tokenizer()
        tokenizer = self.llm.tokenizer
        template = PromptTemplate.for_modality(tokenizer, config.modality, config.prefix_cues, config.prompt_style)
        self.runner = PrefixCachedLLM(self.llm, template)
        self._suffix_cache: dict[str, torch.Tensor] = {}
        self.settings = settings or QFormerSettings(encoder_width=int(self.tokens.shape[-1]),
                                                    num_query_tokens=config.num_query_tokens,
                                                    joint_passes=config.joint_passes)
        bridge = ModalityBridge(self.settings, self.llm.width)
        if config.cmaa:
            from core.cmaa import CrossModalAlignmentAttention

            bridge.cmaa = CrossModalAlignmentAttention(self.llm.width, config.cmaa_hidden)
        trained = trained_prefixes(config.projection, config.cmaa)
        for name, p in bridge.named_parameters():
            if not name.startswith(trained):
                p.requires_grad_(False)
        if config.init_from:
            from core.checkpoints import CheckpointError, load_checkpoint

            if not Path(config.init_from).is_file():
                raise FileNotFoundError(f"init_from {config.init_from} does not exist; run the config that writes it "
                                        "first (a stage1 config, or the Q-Former run a CMAA starts from)")
            try:
                load_checkpoint(bridge, Path(config.init_from))
            except CheckpointError as error:
                raise ValueError(f"init_from {config.init_from} is not a bridge for these features and Q-Former "
                                 f"settings ({error})") from None
        parameters = [p for p in bridge.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
        schedule = warmup_cosine(config.warmup_steps, (*config.continued_from, config.steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.bridge, self.optimizer, self.scheduler = self.accelerator.prepare(bridge, optimizer, scheduler)
        self.word_vocabulary = caption_target_ids(
            tokenizer, [row["caption"] for row in self.rows] + [e["answer"] for e in self.examples],
            config.num_query_tokens).unique()
        self.step = 0
        self.out = Path(config.out)
        self.log_file = self.out / "train.log"

    # --- data -------------------------------------------------------------------------------------------------
    def micro_batch(self, step: int, micro: int) -> list[dict]:
        """The examples this process sees at (step, micro): a disjoint slice per process."""
        c, acc = self.config, self.accelerator
        global_micro = (step * c.grad_accum + micro) * acc.num_processes + acc.process_index
        indices = example_indices(c.seed, len(self.examples), global_micro * c.batch_size, c.batch_size)
        return [self.examples[i] for i in indices]

    def _suffix(self, question: str) -> torch.Tensor:
        if question not in self._suffix_cache:
            self._suffix_cache[question] = self.runner.template.suffix_ids(self.llm.tokenizer, question)
        return self._suffix_cache[question]

    def _answer_ids(self, answer: str) -> torch.Tensor:
        tokenizer = self.llm.tokenizer
        ids = tokenizer(answer, add_special_tokens=False, return_tensors="pt").input_ids[0]
        return torch.cat([ids, torch.tensor([tokenizer.eos_token_id])])

    def media_tokens(self, examples: list[dict]) -> torch.Tensor:
        """(B, passes * queries, llm width) for the examples' samples, each conditioned on its own question."""
        samples = torch.tensor([e["sample"] for e in examples])
        return bridge_media_tokens(self.bridge, self.qformer_tokenizer, self.tokens[samples], self.mask[samples],
                                   [e["question"] for e in examples], self.config.projection, self.accelerator.device,
                                   cmaa_llm=self.llm if self.config.cmaa else None)

    def loss(self, examples: list[dict]) -> torch.Tensor:
        media = self.media_tokens(examples)
        if self.config.objective in WORD_OBJECTIVES:
            texts = [word_target_text(e, self.rows[e["sample"]]["caption"], self.config.objective) for e in examples]
            target_ids = caption_target_ids(self.llm.tokenizer, texts, media.shape[1]).to(media.device)
            return caption_embedding_loss(self.llm, media, target_ids, self.word_vocabulary)
        return self.runner.answer_loss(media, [self._suffix(e["question"]) for e in examples],
                                       [self._answer_ids(e["answer"]) for e in examples])

    # --- state ------------------------------------------------------------------------------------------------
    def save_state(self) -> None:
        """Save into a fresh `<out>/state.partial` (progress.json last), then swap it in for `<out>/state` by
        renames: a kill at any point leaves a complete state whose weights, optimizer and scheduler belong to the
        step its progress.json names (an in-place save could pair the old step with the new weights)."""
        acc = self.accelerator
        state, partial, previous = state_folders(self.out)
        if acc.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(partial))
        acc.wait_for_everyone()
        if acc.is_main_process:
            (partial / "progress.json").write_text(json.dumps({"step": self.step, "config": asdict(self.config),
                                                               "processes": acc.num_processes}))
            if state.exists():
                state.rename(previous)
            partial.rename(state)
            shutil.rmtree(previous, ignore_errors=True)
            self.export(self.out / f"{self.config.modality}_{self.part}.safetensors")
        acc.wait_for_everyone()

    def try_resume(self) -> bool:
        if self.accelerator.is_main_process:
            recover_state(self.out)
        self.accelerator.wait_for_everyone()
        state = state_folders(self.out)[0]
        if not (state / "progress.json").is_file():
            return False
        progress = json.loads((state / "progress.json").read_text())
        check_resumable(progress["config"], self.config, progress["step"], state)
        saved_processes = progress.get("processes", self.accelerator.num_processes)  # older states did not say
        if saved_processes != self.accelerator.num_processes:
            raise ValueError(f"{state} was trained by {saved_processes} processes, this run has "
                             f"{self.accelerator.num_processes}: each process draws its own examples of a step, so "
                             f"resume with {saved_processes} (or use a new --out)")
        self.accelerator.load_state(str(state))
        self.step = progress["step"]
        self.config.continued_from = continued_ends(progress["config"], self.config, self.step)
        lost = self._forget_logged_steps_after(self.step) if self.accelerator.is_main_process else 0
        redone = f"; the {lost} logged steps after it were lost with the interruption and run again" if lost else ""
        self._log(f"resumed at step {self.step} from {state}{redone}")
        return True

    def _forget_logged_steps_after(self, step: int) -> int:
        """Drop the log lines of steps past the saved state (an interrupted run logged them, its rerun redoes
        them), so train.log holds each step once, as it was trained into the weights; returns how many."""
        if not self.log_file.is_file():
            return 0
        lines = self.log_file.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not (m := LOGGED_STEP.match(line)) or int(m.group(1)) <= step]
        if len(kept) != len(lines):
            with atomic_output(self.log_file) as partial:
                partial.write_text("".join(kept), encoding="utf-8")
        return len(lines) - len(kept)

    @property
    def part(self) -> str:
        """What this run trains: "qformer", "linear" or "cmaa"."""
        return "cmaa" if self.config.cmaa else self.config.projection

    def export(self, path: Path, merge_with: Optional[Path] = None) -> None:
        """Write the bridge's trained parameters (fp16 safetensors + json); keep the other projection's weights
        from `merge_with` when that file exists, so Q-Former and baseline trainings fill one file. A CMAA run
        writes the CMAA alone, with the sha256 of the bridge it was trained on."""
        from core.checkpoints import load_checkpoint, save_checkpoint

        trained = self.accelerator.unwrap_model(self.bridge)
        if self.config.cmaa:
            from core.media import file_digest

            save_checkpoint(trained.cmaa, path, {
                **trained.cmaa.config(), "modality": self.config.modality, "bridge": self.config.init_from,
                "bridge_sha256": file_digest(self.config.init_from), "steps": self.step,
                "config": asdict(self.config)})
            return

        with torch.random.fork_rng(devices=[]):  # a fresh bridge's random init must not shift the training RNG
            bridge = ModalityBridge(self.settings, self.llm.width)
        merged_config: dict = {}
        if merge_with is not None and Path(merge_with).with_suffix(".json").is_file():
            merged_config = json.loads(Path(merge_with).with_suffix(".json").read_text())
            if merged_config.get("qformer") != self.settings.to_dict():  # encoder width included
                log.warning("%s holds a bridge for other encoder features or Q-Former settings; its other "
                            "projection is dropped and must be trained again", merge_with)
                merge_with, merged_config = None, {}
        if merge_with is not None and Path(merge_with).is_file():
            load_checkpoint(bridge, merge_with)
        prefixes = trained_prefixes(self.config.projection)
        with torch.no_grad():
            current = dict(trained.named_parameters())
            for name, p in bridge.named_parameters():
                if name.startswith(prefixes):
                    p.copy_(current[name])
        config = {"modality": self.config.modality, "qformer": self.settings.to_dict(), "llm_width": self.llm.width,
                  "trained": {**merged_config.get("trained", {}),
                              self.config.projection: {"steps": self.step, "config": asdict(self.config)}}}
        save_checkpoint(bridge, path, config)

    def _log(self, message: str) -> None:
        if self.accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {message}\n")

    # --- loop -------------------------------------------------------------------------------------------------
    def train(self, stop_after: Optional[int] = None) -> list[float]:
        """Run to `config.steps` (or `stop_after` steps in this call); returns this call's per-step losses."""
        c = self.config
        # a CMAA run keeps the frozen bridge as inference sees it (no dropout); CMAA itself has none
        self.bridge.train(not c.cmaa)
        losses: list[float] = []
        started = time.perf_counter()
        last = self.step
        bar = tqdm(total=c.steps, initial=self.step, desc=f"{c.modality}/{self.part}", unit="step",
                   disable=not self.accelerator.is_main_process)
        while self.step < c.steps and (stop_after is None or len(losses) < stop_after):
            tick = time.perf_counter()
            total = 0.0
            for micro in range(c.grad_accum):
                with self.accelerator.accumulate(self.bridge):
                    with self.accelerator.autocast():
                        loss = self.loss(self.micro_batch(self.step, micro))
                    self.accelerator.backward(loss)
                    self.accelerator.clip_grad_norm_(
                        [p for p in self.bridge.parameters() if p.requires_grad], 1.0)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                total += float(loss.detach()) / c.grad_accum
            if self.accelerator.num_processes > 1:  # the step's loss over every process's examples, not rank 0's
                total = float(self.accelerator.reduce(torch.tensor(total, device=self.accelerator.device), "mean"))
            self.scheduler.step()
            self.step += 1
            losses.append(total)
            seconds = time.perf_counter() - tick
            rate = c.batch_size * c.grad_accum * self.accelerator.num_processes / seconds
            bar.update(1)
            bar.set_postfix(loss=f"{total:.3f}", ex_s=f"{rate:.1f}")
            self._log(f"step {self.step} loss {total:.4f} lr {self.scheduler.get_last_lr()[0]:.2e} "
                      f"examples/s {rate:.2f} step_s {seconds:.2f}")
            minutes = (time.perf_counter() - started) / 60
            out_of_time = c.max_minutes is not None and minutes >= c.max_minutes
            if c.max_minutes is not None and self.accelerator.num_processes > 1:
                # every process times its own run: they stop together, or one waits in save_state while the
                # others wait in their next step's gradient sync, for ever
                flag = torch.tensor(float(out_of_time), device=self.accelerator.device)
                out_of_time = bool(self.accelerator.reduce(flag, "sum") > 0)
            if self.step % c.checkpoint_every == 0 or self.step == c.steps or out_of_time:
                self.save_state()
                last = self.step
            if self.step in c.snapshot_steps and self.accelerator.is_main_process:
                self.export(self.out / f"step_{self.step}.safetensors")
            if out_of_time:
                self._log(f"stopping after {minutes:.1f} min (max_minutes); rerun the command to continue")
                break
        bar.close()
        if self.step != last and stop_after is None:
            self.save_state()
        if self.step >= c.steps and c.export and self.accelerator.is_main_process:
            self.export(Path(c.export), merge_with=Path(c.export))
            self._log(f"exported {c.export}")
        return losses


LOGGED_STEP = re.compile(r"\S+ step (\d+) loss ")
"""A train.log line of one training step ("12:00:01 step 25 loss 1.2345 ...")."""


def state_folders(out: Path) -> tuple[Path, Path, Path]:
    """The saved state, the one being written, and the one it replaces (kept until the new one is in place)."""
    return out / "state", out / "state.partial", out / "state.previous"


def recover_state(out: Path) -> None:
    """Clean up after a save that a kill interrupted: if it died between its two renames, the previous state is
    the complete one and goes back in place; a half-written state and a replaced one are removed."""
    state, partial, previous = state_folders(out)
    if not (state / "progress.json").is_file() and (previous / "progress.json").is_file():
        shutil.rmtree(state, ignore_errors=True)
        previous.rename(state)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(previous, ignore_errors=True)


def bridge_media_tokens(bridge: ModalityBridge, qformer_tokenizer, tokens: torch.Tensor, mask: torch.Tensor,
                        questions: list[str], projection: str, device: torch.device, cmaa_llm=None) -> torch.Tensor:
    """Cached features (B, passes, T, W) -> LLM-width media tokens (B, passes * queries, width), one question each;
    with `cmaa_llm` (the LLM whose embeddings of the questions CMAA attends to), through the bridge's CMAA too."""
    from core.cmaa import instruction_embeddings

    instruction = qformer_tokenizer(questions, padding=True, truncation=True,
                                    max_length=getattr(bridge, "module", bridge).settings.max_instruction_tokens,
                                    return_tensors="pt")
    out = bridge(tokens.float().to(device), mask.to(device), instruction.input_ids.to(device),
                 instruction.attention_mask.to(device), projection=projection,
                 cmaa_text=instruction_embeddings(cmaa_llm, questions) if cmaa_llm is not None else None)
    return out.tokens


def trained_prefixes(projection: str, cmaa: bool = False) -> tuple[str, ...]:
    """Parameter-name prefixes of the bridge that a run trains: the baseline, the Q-Former with its projection, or
    CMAA alone."""
    if cmaa:
        return ModalityBridge.PART_PREFIXES["cmaa"]
    if projection not in ("qformer", "linear"):
        raise ValueError(f"projection must be qformer or linear, not {projection!r}")
    return ModalityBridge.PART_PREFIXES[projection]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    overrides = parser.add_argument_group("config overrides (each replaces the config file's key of that name)")
    overrides.add_argument("--steps", type=positive_int)
    overrides.add_argument("--out", help="the run folder (state, log, snapshots)")
    overrides.add_argument("--export", help="where the finished bridge (or CMAA) goes")
    overrides.add_argument("--init-from", dest="init_from",
                           help="the bridge to start from, e.g. a trial's stage-1 export")
    overrides.add_argument("--train-samples", dest="train_samples", type=positive_int,
                           help="train on the first N samples (a smaller world than the config's)")
    overrides.add_argument("--checkpoint-every", dest="checkpoint_every", type=positive_int)
    overrides.add_argument("--max-minutes", type=float, dest="max_minutes")
    overrides.add_argument("--mixed-precision", dest="mixed_precision", choices=["no", "bf16", "fp16"])
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO)
    try:
        names = ("steps", "out", "export", "init_from", "train_samples", "checkpoint_every", "max_minutes",
                 "mixed_precision")
        config = TrainConfig.from_json(args.config, **{name: getattr(args, name) for name in names})
        trainer = BridgeTrainer(config)
        trainer.try_resume()
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    trainer.train()


if __name__ == "__main__":
    main()
