"""Linear probe: how well each EfficientNet-Lite0 level tells an object's colour from the token of its own cell.

This is the measurement behind the image modality's mid-level tokens (core.encoders.image): a softmax regression
per level, trained on the objects of training-split pictures and scored on the test split's, overall and on
pictures of one group (no other colour to confuse). Prints and writes JSON.

    python -m train.probe_colour --data data/world --train-images 3000 --out runs/eval/colour_probe.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from core.encoders.image import EfficientNetImageEncoder
from train.cli_types import positive_int
from train.features import manifest_rows

DEFAULT_BLOCKS = (4, 7, 10, 14)


def object_cells(encoder: EfficientNetImageEncoder, rows: list[dict], blocks: set[int], batch: int = 64):
    """Each object's token at its centre cell, per level; its colour; and how many groups its picture has."""
    features: dict[int | str, list[torch.Tensor]] = {}
    colours, group_counts = [], []
    for start in tqdm(range(0, len(rows), batch), desc="probe features", unit="batch"):
        chunk = rows[start:start + batch]
        with torch.no_grad():
            levels = encoder.feature_levels(encoder.preprocess([Image.open(r["path"]) for r in chunk]), blocks)
        for i, row in enumerate(chunk):
            props = row["properties"]
            for obj in props["objects"]:
                x, y = obj["center"]
                gx = min(encoder.grid - 1, int(x * encoder.grid / props["width"]))
                gy = min(encoder.grid - 1, int(y * encoder.grid / props["height"]))
                for name, level in levels.items():
                    features.setdefault(name, []).append(level[i, :, gy, gx])
                colours.append(obj["colour"])
                group_counts.append(len(props["groups"]))
    return {k: torch.stack(v) for k, v in features.items()}, colours, torch.tensor(group_counts)


def fit_softmax_probe(x: torch.Tensor, labels: torch.Tensor, classes: int, steps: int = 300) -> torch.nn.Linear:
    """Standardised inputs -> L2-regularised softmax regression, fitted with L-BFGS (a convex problem)."""
    probe = torch.nn.Linear(x.shape[1], classes)
    optimiser = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), labels) + 1e-4 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return probe


def probe_levels(train, test, combinations: dict[str, list]) -> dict[str, dict[str, float]]:
    (train_x, train_colours, _), (test_x, test_colours, test_groups) = train, test
    names = sorted(set(train_colours) | set(test_colours))
    train_y = torch.tensor([names.index(c) for c in train_colours])
    test_y = torch.tensor([names.index(c) for c in test_colours])
    one_group = test_groups == 1
    results = {}
    for label, levels in combinations.items():
        x_train = torch.cat([train_x[level] for level in levels], 1)
        x_test = torch.cat([test_x[level] for level in levels], 1)
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        probe = fit_softmax_probe((x_train - mean) / std, train_y, len(names))
        with torch.no_grad():
            right = probe((x_test - mean) / std).argmax(1) == test_y
        results[label] = {"channels": x_train.shape[1], "accuracy": round(right.float().mean().item(), 4),
                          "one_group_accuracy": round(right[one_group].float().mean().item(), 4)}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/world"))
    parser.add_argument("--train-images", type=positive_int, default=3000, help="training-split pictures to fit on")
    parser.add_argument("--test-images", type=positive_int, default=200, help="test-split pictures to score on")
    parser.add_argument("--blocks", type=int, nargs="+", default=list(DEFAULT_BLOCKS))
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    try:
        train_rows = manifest_rows(args.data, "train", "image")[:args.train_images]
        test_rows = manifest_rows(args.data, "test", "image")[:args.test_images]
    except (OSError, ValueError) as error:
        parser.error(str(error))
    torch.manual_seed(0)
    encoder = EfficientNetImageEncoder()
    blocks = set(args.blocks) | {encoder.mid_level_block}
    train = object_cells(encoder, train_rows, blocks)
    test = object_cells(encoder, test_rows, blocks)
    combinations = {"head": ["head"], **{f"block {b}": [b] for b in sorted(blocks)},
                    f"head + block {encoder.mid_level_block}": ["head", encoder.mid_level_block]}
    results = {"train_objects": len(train[1]), "test_objects": len(test[1]),
               "levels": probe_levels(train, test, combinations)}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
