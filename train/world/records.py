"""The sample record every data source produces (tiny world and real-data adapters), and its manifest files.

A manifest is a JSON-lines file, one record per line. A record's `path` is stored relative to the folder holding
the manifest (or absolute when the media lie elsewhere), so a generated data set can be moved as a whole; reading
a manifest gives back usable paths.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Optional

from core.atomic import atomic_output

SPLITS = ("train", "val", "test")
"""The splits a data set folder holds (ROOT/<split>/<modality>/manifest.jsonl)."""


@dataclass
class SampleRecord:
    sample_id: str
    modality: str
    """One of core.schema.MODALITIES: "audio", "video", "points", "image"."""
    path: str
    caption: str
    captions: list[str]
    """Every reference caption (the tiny world has one, COCO five); `caption` is the first."""
    properties: dict = field(default_factory=dict)
    """Structured facts about the media; the tiny world's full scene record, a real data set's extra columns."""
    split: str = "train"
    source: str = "tiny-world"
    seed: Optional[int] = None
    """Per-sample seed of a generated sample: disjoint ranges per split."""

    def to_json(self, base_dir: str | None = None) -> dict:
        """With `base_dir`, the path relative to it when the file lies inside it, else absolute (a path relative
        to the current folder would be read back relative to `base_dir`)."""
        data = asdict(self)
        if base_dir is not None:
            absolute = os.path.abspath(self.path)
            relative = os.path.relpath(absolute, os.path.abspath(base_dir))
            data["path"] = absolute if relative.startswith("..") else relative
        return data

    @classmethod
    def from_json(cls, data: dict, base_dir: str | None = None) -> "SampleRecord":
        record = cls(**data)
        if base_dir is not None and not os.path.isabs(record.path):
            record.path = os.path.join(base_dir, record.path)
        return record


def write_manifest(path: str, records: list[SampleRecord]) -> None:
    """Write the records with paths relative to the manifest's folder, so the data set can move as a whole."""
    base_dir = os.path.dirname(os.path.abspath(path))
    write_jsonl(path, [record.to_json(base_dir) for record in records])


def write_jsonl(path, rows: list[dict]) -> None:
    """One JSON object per line, written all at once through a temporary file, so a file on disk is always
    complete (a job killed while writing leaves the old file, and its rerun does not trust a torn one)."""
    with atomic_output(path) as partial, open(partial, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def row_digest(row: dict) -> str:
    """A short digest of a manifest row's content (not its path, which moves with the data set): instruction
    examples carry it, so training can tell features of another manifest from their own, even at the same ids."""
    content = {key: value for key, value in row.items() if key != "path"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def read_jsonl(path) -> list[dict]:
    """One JSON object per non-blank line (manifests, instruction sets, feature rows)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_manifest(path: str) -> list[SampleRecord]:
    """Records with paths joined to the manifest's folder."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no manifest at {path}; generate one with `python -m train.world` or an adapter")
    base_dir = os.path.dirname(path)
    return [SampleRecord.from_json(row, base_dir) for row in read_jsonl(path)]
