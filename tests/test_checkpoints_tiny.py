"""The shipped offline checkpoints: present, small, trained, loaded by the tiny preset, and right on fresh
tiny-world samples the training never saw (test-split indices far past the generated test set), through the same
`Pipeline.ask` and CLI a user meets."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.presets.tiny import CHECKPOINTS

FRESH_TEST_INDEX = 900_000
"""First test-split sample index used here: disjoint from every training seed by the generator's split offsets,
and past the 200 test samples the evaluation reads."""
MAX_TOTAL_MB = 60
MODALITIES = ("image", "audio", "video", "points")
QUESTIONS_PER_TASK = 8

# (modality, task, least number right of QUESTIONS_PER_TASK). Each threshold sits below the test-split accuracy of
# the shipped checkpoint (train/RESULTS.md, in the comments) and far above chance (1 in 2 for pitch, 1 in 4 for
# direction, about 1 in 10 for the rest), so the test fails when a checkpoint is missing, untrained or broken.
TASKS = [
    ("image", "colour", 6),  # 90.6% on one-group pictures (the only ones asked here)
    ("image", "object", 6),  # 92.0%
    ("audio", "sound", 7),  # 100%
    ("audio", "pitch", 7),  # 100%
    ("video", "direction", 6),  # 95.0%
    ("points", "object", 7),  # 99.5%
]


def test_every_modality_ships_a_trained_bridge_and_cmaa_within_the_size_budget():
    for modality in MODALITIES:
        for name in (modality, f"{modality}_cmaa"):
            weights = CHECKPOINTS / f"{name}.safetensors"
            assert weights.is_file(), f"{weights.name} is not shipped"
            assert weights.with_suffix(".json").is_file(), f"{weights.name} has no JSON config beside it"
        config = json.loads((CHECKPOINTS / f"{modality}.json").read_text())
        assert {"qformer", "linear"} <= set(config["trained"]), f"{modality}: trained only {config['trained']}"
    total = sum(p.stat().st_size for p in CHECKPOINTS.iterdir()) / 1e6
    assert total <= MAX_TOTAL_MB, f"checkpoints take {total:.1f} MB, over {MAX_TOTAL_MB} MB"


def fresh_questions(folder: Path, modality: str, task: str, count: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """(media path, question, accepted answers) from new test-split samples that ask `task` exactly once, so the
    question cannot be about one of several objects."""
    from train.templates import template_qa
    from train.world.dataset import make_sample

    found = []
    for index in range(FRESH_TEST_INDEX, FRESH_TEST_INDEX + 50 * count):
        record = make_sample(str(folder), "test", modality, 0, index)
        pairs = [p for p in template_qa(modality, record.properties) if p.property == task]
        if len(pairs) == 1:
            found.append((record.path, pairs[0].question, pairs[0].accepted))
        if len(found) == count:
            return found
    raise AssertionError(f"too few fresh {modality} samples with one {task} question")


@pytest.mark.parametrize("modality,task,least_right", TASKS, ids=[f"{m}-{t}" for m, t, _ in TASKS])
def test_shipped_checkpoint_answers_fresh_test_questions(tiny_pipeline, tmp_path, modality, task, least_right):
    from core.schema import AskRequest, GenerationSettings
    from train.evaluate import is_correct

    answers = []
    for path, question, accepted in fresh_questions(tmp_path, modality, task, QUESTIONS_PER_TASK):
        request = AskRequest(question=question, settings=GenerationSettings(max_new_tokens=10), **{modality: path})
        answer = tiny_pipeline.ask(request).answer
        answers.append((question, accepted[0], answer, is_correct(answer, list(accepted))))
    right = sum(ok for *_, ok in answers)
    assert right >= least_right, f"{modality} {task}: {right}/{len(answers)} right: {answers}"


def test_cli_names_the_colour_of_a_new_picture(tmp_path):
    """The issue's own check, as a user types it."""
    from train.evaluate import is_correct

    pictures = [(path, accepted) for path, _, accepted in fresh_questions(tmp_path, "image", "colour", 3)]
    right = 0
    for path, accepted in pictures:
        run = subprocess.run([sys.executable, "-m", "core", "ask", "--image", path, "--max-new-tokens", "8",
                              "What color is the object?"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        right += is_correct(run.stdout, list(accepted))
    assert right >= 2, f"{right}/3 colours right"
