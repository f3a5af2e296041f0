"""Making the tiny-world data set: per-sample seeds, resumable generation, one manifest per split and modality.

Layout under the output folder:
    world.json                                  how the set was made (seed, generator version, counts)
    {split}/{modality}/{index:06d}.{ext}        media
    {split}/{modality}/manifest.jsonl           one SampleRecord per line, in index order

Every sample has its own seed, SPLIT_SEED_OFFSET[split] + index, so the splits never share one, and two random
streams derived from it: one draws the properties record, the other only renders. Resuming therefore redraws the
cheap records and renders just the media files that are missing.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from functools import partial
from types import ModuleType

import numpy as np
from tqdm import tqdm

from core.schema import MODALITIES
from train.world import audio, image, pointcloud, video
from train.world.captions import caption
from train.world.records import SPLITS, SampleRecord, read_manifest, write_manifest

GENERATOR_VERSIONS = {"image": 1, "video": 1, "audio": 1, "points": 1}
"""Bump a modality's number when a change alters what its seeds draw: folders holding samples of the old kind then
refuse to resume that modality, while the other modalities go on."""
SPLIT_SEED_OFFSET = {"train": 0, "val": 1_000_000_000, "test": 2_000_000_000}
MAX_SAMPLES_PER_SPLIT = 1_000_000_000
GENERATORS: dict[str, ModuleType] = {"image": image, "video": video, "audio": audio, "points": pointcloud}
"""Each module has EXTENSION, sample_scene(rng) -> properties and write(properties, rng, path)."""
SCENE_STREAM, RENDER_STREAM = 0, 1


def sample_seed(split: str, index: int) -> int:
    if split not in SPLIT_SEED_OFFSET:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not 0 <= index < MAX_SAMPLES_PER_SPLIT:
        raise ValueError(f"sample index {index} is outside 0..{MAX_SAMPLES_PER_SPLIT - 1}")
    return SPLIT_SEED_OFFSET[split] + index


def sample_rng(world_seed: int, modality: str, seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([world_seed, MODALITIES.index(modality), seed, stream])


def sample_id(split: str, modality: str, index: int) -> str:
    return f"{split}-{modality}-{index:06d}"


def media_path(root: str, split: str, modality: str, index: int) -> str:
    return os.path.join(root, split, modality, f"{index:06d}.{GENERATORS[modality].EXTENSION}")


def manifest_path(root: str, split: str, modality: str) -> str:
    return os.path.join(root, split, modality, "manifest.jsonl")


def load_split(root: str, split: str, modality: str) -> list[SampleRecord]:
    return read_manifest(manifest_path(root, split, modality))


def make_sample(root: str, split: str, modality: str, world_seed: int, index: int) -> SampleRecord:
    """The record of one sample, rendering its media file unless it is already there."""
    seed = sample_seed(split, index)
    generator = GENERATORS[modality]
    properties = generator.sample_scene(sample_rng(world_seed, modality, seed, SCENE_STREAM))
    path = media_path(root, split, modality, index)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        stem, extension = os.path.splitext(path)
        partial_path = f"{stem}.partial{extension}"
        generator.write(properties, sample_rng(world_seed, modality, seed, RENDER_STREAM), partial_path)
        os.replace(partial_path, path)
    text = caption(modality, properties)
    return SampleRecord(sample_id=sample_id(split, modality, index), modality=modality, path=path, caption=text,
                        captions=[text], properties=properties, split=split, source="tiny-world", seed=seed)


def _check_or_write_info(root: str, world_seed: int, counts: dict[str, int], modalities: list[str]) -> None:
    """Refuse to extend a folder whose samples of these modalities were drawn differently; then record this run."""
    info_path = os.path.join(root, "world.json")
    previous = {}
    if os.path.exists(info_path):
        with open(info_path, encoding="utf-8") as handle:
            previous = json.load(handle)
    versions = previous.get("versions", {})
    problems = [f"seed={previous['seed']}"] if previous.get("seed", world_seed) != world_seed else []
    problems += [f"{m} generator version {versions[m]}" for m in modalities
                 if versions.get(m, GENERATOR_VERSIONS[m]) != GENERATOR_VERSIONS[m]]
    if "audio" in modalities and "audio" in versions and previous.get("speech_available") != audio.speech_available():
        problems.append(f"speech_available={previous.get('speech_available')} (espeak-ng installed or removed since)")
    if problems:
        raise ValueError(f"{root} was made with {', '.join(problems)}, which this run does not match; use another "
                         "--out folder or delete the old one")
    os.makedirs(root, exist_ok=True)
    info = {"generator": "tiny-world", "seed": world_seed, "speech_available": audio.speech_available(),
            "num_points": pointcloud.NUM_POINTS,
            "versions": {**versions, **{m: GENERATOR_VERSIONS[m] for m in modalities}},
            "samples": {**previous.get("samples", {}),
                        **{f"{split}/{m}": n for split, n in counts.items() for m in modalities}}}
    with open(info_path, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)


def generate_world(root: str, counts: dict[str, int], modalities: list[str], workers: int = 1, world_seed: int = 0,
                   progress: bool = True) -> dict[str, float]:
    """Make (or complete) every split and modality; returns seconds spent per "split/modality". A split asked
    for 0 samples is left as it is, so one split can be added to a folder without touching the others."""
    unknown = [m for m in modalities if m not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; expected some of {list(GENERATORS)}")
    counts = {split: count for split, count in counts.items() if count > 0}
    _check_or_write_info(root, world_seed, counts, modalities)
    seconds = {}
    pool = multiprocessing.Pool(workers) if workers > 1 else None
    try:
        for split, count in counts.items():
            for modality in modalities:
                task = partial(make_sample, root, split, modality, world_seed)
                started = time.perf_counter()
                results = pool.imap(task, range(count), chunksize=8) if pool else map(task, range(count))
                records = list(tqdm(results, total=count, desc=f"{split}/{modality}", unit="sample",
                                    disable=not progress))
                write_manifest(manifest_path(root, split, modality), records)
                seconds[f"{split}/{modality}"] = time.perf_counter() - started
    finally:
        if pool:
            pool.close()
            pool.join()
    return seconds
