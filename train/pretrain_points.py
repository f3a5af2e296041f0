"""Pre-train the 3D point-group encoder on tiny-world scenes (the role ULIP-2 plays for the paper's PointBERT).

Each group token must tell which object kind (12 classes) and which colour it lies on; a one-layer transformer
head over the scene's tokens gives it context during pre-training and is then thrown away, so the shipped encoder
makes per-group tokens that a Q-Former can aggregate. Colours are drawn independently of shapes in the tiny world,
so shape features cannot lean on colour; the evaluation also re-scores shapes with the colour channels permuted,
to measure that. Clouds are loaded exactly as the app loads them (unit sphere, farthest-point sampling) and
grouped once; training augments by turning the whole scene about the vertical axis and scaling it slightly.
Every epoch ends with a saved state (`<out>/state.pt`); rerunning the same command resumes after the last one.

    python -m train.pretrain_points --data data/world --out runs/points_encoder \
        --export assets/checkpoints/tiny/points_encoder.safetensors --epochs 16 [--train-clouds 1500]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from core.atomic import atomic_output
from core.encoders.pointcloud import PointGroupEncoder
from train.cli_types import positive_int
from train.world.vocabulary import COLOURS, SHAPES

SHAPE_CLASSES = list(SHAPES)
COLOUR_CLASSES = list(COLOURS)


def group_labels(raw_xyz: np.ndarray, centres: np.ndarray, objects: list[dict]) -> np.ndarray:
    """For each group centre (in the loader's unit-sphere frame), the index of the object it lies on: the object
    whose base is nearest on the ground plane, measured in units of that object's footprint."""
    from train.world.pointcloud import footprint_radius

    mean = raw_xyz.mean(axis=0)
    radius = float(np.sqrt(((raw_xyz - mean) ** 2).sum(axis=1).max()))
    bases = (np.array([o["base"] for o in objects]) - mean) / radius
    reach = np.array([footprint_radius(o["shape"]) * o["scale"] / radius for o in objects])
    distance = np.linalg.norm(centres[:, None, [0, 2]] - bases[None, :, [0, 2]], axis=-1) / reach[None]
    return distance.argmin(axis=1)


def prepare_split(rows: list[dict], split: str, encoder: PointGroupEncoder) -> dict:
    """Grouped clouds (N,G,K,6), centres (N,G,3) and per-group shape / colour / object labels (N,G)."""
    from core import media
    from core.presets.tiny import tiny_preset

    num_points = tiny_preset().num_points
    grouped, centres, shapes, colours, owners = [], [], [], [], []
    for row in tqdm(rows, desc=f"group {split}/points", unit="cloud"):
        cloud = media.load_points(row["path"], num_points=num_points)
        local, centre, _ = encoder.group(torch.from_numpy(cloud.xyz), torch.from_numpy(cloud.rgb))
        objects = row["properties"]["objects"]
        owner = group_labels(np.load(row["path"])[:, :3], centre.numpy(), objects)
        grouped.append(local)
        centres.append(centre)
        owners.append(torch.from_numpy(owner))
        shapes.append(torch.tensor([SHAPE_CLASSES.index(objects[i]["shape"]) for i in owner]))
        colours.append(torch.tensor([COLOUR_CLASSES.index(objects[i]["colour"]) for i in owner]))
    return {"grouped": torch.stack(grouped), "centres": torch.stack(centres), "shape": torch.stack(shapes),
            "colour": torch.stack(colours), "owner": torch.stack(owners), "rows": rows}


def grouped_splits(data: Path, cache: Path, encoder: PointGroupEncoder, train_clouds: int | None) -> dict:
    """The grouped train and test splits, from `cache` when it was made from the manifests' current rows (a
    regenerated world or another --data is grouped again, not trained on stale clouds)."""
    from train.features import manifest_rows

    rows = {"train": manifest_rows(data, "train", "points")[:train_clouds],
            "test": manifest_rows(data, "test", "points")}
    if cache.is_file():
        splits = torch.load(cache, weights_only=False)
        if all(splits[split]["rows"] == rows[split] for split in rows):
            return splits
        print(f"{cache} was grouped from other data; grouping again")
    splits = {split: prepare_split(split_rows, split, encoder) for split, split_rows in rows.items()}
    with atomic_output(cache) as partial:
        torch.save(splits, partial)
    return splits


class PretrainHead(nn.Module):
    """Context over the scene's group tokens, then per-group shape and colour classifiers (discarded after)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.context = nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=2 * width, batch_first=True,
                                                  dropout=0.0)
        self.shape = nn.Linear(width, len(SHAPE_CLASSES))
        self.colour = nn.Linear(width, len(COLOUR_CLASSES))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.context(tokens)
        return self.shape(context), self.colour(context)


def augment(grouped: torch.Tensor, centres: torch.Tensor, generator: torch.Generator):
    """Turn each scene about the vertical (y) axis by a random angle and scale it by 0.85-1.15."""
    b = grouped.shape[0]
    angle = torch.rand(b, generator=generator) * 2 * math.pi
    c, s = torch.cos(angle), torch.sin(angle)
    turn = torch.zeros(b, 3, 3)
    turn[:, 0, 0], turn[:, 0, 2], turn[:, 1, 1], turn[:, 2, 0], turn[:, 2, 2] = c, s, 1, -s, c
    scale = (0.85 + 0.3 * torch.rand(b, 1, 1, generator=generator))
    xyz = torch.einsum("bgkc,bdc->bgkd", grouped[..., :3], turn) * scale[..., None]
    return torch.cat([xyz, grouped[..., 3:]], dim=-1), torch.einsum("bgc,bdc->bgd", centres, turn) * scale


@torch.no_grad()
def scores(encoder: PointGroupEncoder, head: PretrainHead, split: dict, permute_colours: bool = False) -> dict:
    """Group-level shape/colour accuracy and object-level shape accuracy (majority vote of an object's groups)."""
    encoder.eval(), head.eval()
    grouped = split["grouped"].clone()
    if permute_colours:
        grouped[..., 3:] = grouped[..., [5, 3, 4]]
    shape_logits, colour_logits = [], []
    for start in range(0, len(grouped), 64):
        tokens = encoder(grouped[start:start + 64], split["centres"][start:start + 64])
        s, c = head(tokens)
        shape_logits.append(s)
        colour_logits.append(c)
    shape_pred = torch.cat(shape_logits).argmax(-1)
    colour_pred = torch.cat(colour_logits).argmax(-1)
    right = total = 0
    for i, row in enumerate(split["rows"]):
        for k, obj in enumerate(row["properties"]["objects"]):
            votes = shape_pred[i][split["owner"][i] == k]
            if len(votes):
                total += 1
                right += int(int(votes.mode().values) == SHAPE_CLASSES.index(obj["shape"]))
    return {"group_shape_accuracy": round(float((shape_pred == split["shape"]).float().mean()), 4),
            "group_colour_accuracy": round(float((colour_pred == split["colour"]).float().mean()), 4),
            "object_shape_accuracy": round(right / max(1, total), 4), "objects": total}


LEARNING_ARGS = ("data", "epochs", "batch_size", "lr", "seed", "train_clouds")
"""Arguments that decide what a run learns; a saved state resumes only under the same values."""


def learning_args(args: argparse.Namespace) -> dict:
    """The run's LEARNING_ARGS, `data` as an absolute path (a resume may spell it relative or absolute)."""
    return {name: str(Path(args.data).resolve()) if name == "data" else getattr(args, name) for name in LEARNING_ARGS}


def check_resumable(saved: dict, current: dict, state_path: Path) -> None:
    """Refuse to continue a state under other learning arguments: the one-cycle schedule's length is fixed by
    `epochs` at the start (a longer run would step past its end), and the others would mix two trainings."""
    if "data" in saved:  # states saved before `data` was made absolute hold it as spelled
        saved = {**saved, "data": str(Path(saved["data"]).resolve())}
    changed = {name: (saved[name], current[name]) for name in LEARNING_ARGS
               if name in saved and saved[name] != current[name]}
    if not changed:
        return
    details = ", ".join(f"--{name.replace('_', '-')} {old} -> {new}" for name, (old, new) in changed.items())
    hint = (" (its one-cycle learning-rate schedule was laid out for the first value and cannot be stretched)"
            if "epochs" in changed else "")
    raise ValueError(f"{state_path} was trained with other arguments: {details}{hint}; use a new --out, or "
                     f"delete {state_path} to start over")


def main(argv: list[str] | None = None) -> None:
    from core.checkpoints import save_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/world"), help="the tiny world (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("runs/points_encoder"),
                        help="run folder: grouped clouds, state.pt to resume from, the log (default: %(default)s)")
    parser.add_argument("--export", type=Path, default=Path("assets/checkpoints/tiny/points_encoder.safetensors"),
                        help="the frozen encoder written at the end; the default is the SHIPPED file, which the tiny "
                             "preset loads: point a trial run elsewhere (default: %(default)s)")
    parser.add_argument("--epochs", type=positive_int, default=16, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="scenes per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak of the one-cycle schedule (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--train-clouds", type=positive_int, help="use the first N training scenes (default: all)")
    parser.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this; a rerun continues")
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    encoder, head = PointGroupEncoder(), PretrainHead(PointGroupEncoder().width)
    cache = args.out / f"grouped-{args.train_clouds or 'all'}.pt"
    try:
        splits = grouped_splits(args.data, cache, encoder, args.train_clouds)
    except FileNotFoundError as error:
        parser.error(str(error))
    train = splits["train"]
    steps_per_epoch = math.ceil(len(train["grouped"]) / args.batch_size)
    parameters = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(args.seed)
    state_path = args.out / "state.pt"
    first_epoch, minutes_before = 0, 0.0
    if state_path.is_file():  # resume after the last finished epoch, exactly (weights, optimiser, schedule, RNG)
        state = torch.load(state_path, weights_only=False)
        try:
            check_resumable(state.get("args", {}), learning_args(args), state_path)
        except ValueError as error:
            parser.error(str(error))
        encoder.load_state_dict(state["encoder"]), head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"]), schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"]), torch.set_rng_state(state["rng"])
        first_epoch, minutes_before = state["epoch"], state["minutes"]
        print(f"resuming after epoch {first_epoch} from {state_path}")
    started = time.perf_counter()
    log = open(args.out / "train.log", "a")
    for epoch in range(first_epoch, args.epochs):
        encoder.train(), head.train()
        order = torch.randperm(len(train["grouped"]), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="step")
        for step in bar:
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            grouped, centres = augment(train["grouped"][batch], train["centres"][batch], generator)
            shape_logits, colour_logits = head(encoder(grouped, centres))
            loss = nn.functional.cross_entropy(shape_logits.flatten(0, 1), train["shape"][batch].flatten()) \
                + 0.5 * nn.functional.cross_entropy(colour_logits.flatten(0, 1), train["colour"][batch].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        last_loss = float(loss.detach())
        result = scores(encoder, head, splits["test"])
        log.write(json.dumps({"epoch": epoch + 1, "loss": round(last_loss, 4), **result}) + "\n")
        log.flush()
        minutes = minutes_before + (time.perf_counter() - started) / 60
        state = {"encoder": encoder.state_dict(), "head": head.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict(), "generator": generator.get_state(), "rng": torch.get_rng_state(),
                 "epoch": epoch + 1, "minutes": minutes, "args": learning_args(args)}
        with atomic_output(state_path) as partial:
            torch.save(state, partial)
        print(f"epoch {epoch + 1}: loss {last_loss:.3f} test {result}")
        if args.max_minutes is not None and minutes - minutes_before >= args.max_minutes and epoch + 1 < args.epochs:
            print(f"stopping after epoch {epoch + 1} (--max-minutes); rerun the command to continue")
            return
    result = {"test": scores(encoder, head, splits["test"]),
              "test_colour_channels_permuted": scores(encoder, head, splits["test"], permute_colours=True),
              "epochs": args.epochs, "train_clouds": len(train["grouped"]),
              "minutes": round(minutes_before + (time.perf_counter() - started) / 60, 2)}
    with atomic_output(args.out / "result.json") as partial:
        partial.write_text(json.dumps(result, indent=2) + "\n")
    encoder.eval().requires_grad_(True)
    command = "python -m train.pretrain_points " + " ".join(sys.argv[1:] if argv is None else argv)
    save_checkpoint(encoder, args.export, {"encoder": encoder.config.to_dict(), "pretraining": result,
                                           "command": command})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
