"""The shipped offline checkpoints: present, small, loaded by the tiny preset, and right on fresh tiny-world
pictures the training never saw (test-split seeds far past the generated test set)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.presets.tiny import CHECKPOINTS

FRESH_TEST_INDICES = range(900_000, 900_040)
"""Test-split sample indices: disjoint from every training seed by the generator's split offsets."""
MAX_TOTAL_MB = 60


def test_shipped_checkpoints_are_small_safetensors_with_configs():
    files = sorted(CHECKPOINTS.glob("*.safetensors"))
    assert (CHECKPOINTS / "image.safetensors") in files, "the image bridge must be shipped"
    for path in files:
        assert path.with_suffix(".json").is_file(), f"{path.name} has no JSON config beside it"
    total = sum(p.stat().st_size for p in CHECKPOINTS.iterdir()) / 1e6
    assert total <= MAX_TOTAL_MB, f"checkpoints take {total:.1f} MB, over {MAX_TOTAL_MB} MB"


def _fresh_single_colour_pictures(folder: Path, count: int) -> list[tuple[str, str]]:
    """(path, colour) of new test-split pictures that show one group of objects."""
    from train.world.dataset import make_sample

    found = []
    for index in FRESH_TEST_INDICES:
        record = make_sample(str(folder), "test", "image", 0, index)
        groups = record.properties["groups"]
        if len(groups) == 1:
            found.append((record.path, groups[0]["colour"]))
        if len(found) == count:
            return found
    raise AssertionError("not enough one-group pictures among the fresh indices")


def test_image_checkpoint_names_the_colour_of_fresh_pictures(tiny_pipeline, tmp_path):
    from core.schema import AskRequest, GenerationSettings
    from train.evaluate import is_correct

    pictures = _fresh_single_colour_pictures(tmp_path, 6)
    # The image Q-Former reaches 68% colour accuracy on the test split (train/RESULTS.md), below the 90%
    # target; half right is far above what an untrained bridge gives (about one in eight) and below the measured
    # rate, so this fails when the checkpoint is missing, untrained or broken, not on the known shortfall.
    answers = []
    for path, colour in pictures:
        result = tiny_pipeline.ask(AskRequest(question="What color is the object?", image=path,
                                              settings=GenerationSettings(max_new_tokens=10)))
        answers.append((colour, result.answer, is_correct(result.answer, [colour])))
    right = sum(ok for _, _, ok in answers)
    assert right >= 3, f"only {right}/6 colours right: {answers}"
