"""Cache the frozen encoders' outputs for a tiny-world split, so each training epoch runs only Q-Former and LLM.

Output for `--out data/features --split train --modality image`: `data/features/train/image.safetensors` holding
`tokens` (N, passes, T, width) fp16 and `mask` (N, passes, T), and `image.jsonl` with each sample's manifest row in
the same order. Work is written in parts of `--part-size` samples, so an interrupted run resumes where it stopped.

    python -m train.features --data data/world --out data/features --split train --modality image
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from core.atomic import atomic_output
from core.encoders.base import EncodedMedia
from train.cli_types import positive_int
from train.world.records import SPLITS, read_jsonl, row_digest, write_jsonl

log = logging.getLogger(__name__)


def manifest_rows(data: Path, split: str, modality: str) -> list[dict]:
    """The generator's manifest records as dicts, `path` made absolute."""
    from dataclasses import asdict

    from train.world.dataset import manifest_path
    from train.world.records import read_manifest

    path = Path(manifest_path(str(data), split, modality))
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; make the data first: python -m train.world --out {data} ...")
    return [asdict(record) for record in read_manifest(str(path))]


def encoder_for(modality: str, points_encoder: Path | None = None) -> Callable[[str], EncodedMedia]:
    """File path -> EncodedMedia with the tiny preset's frozen encoder and its loading settings."""
    from core import media
    from core.presets.tiny import MID_LEVEL_FEATURES, tiny_preset

    preset = tiny_preset()
    if modality in ("image", "video"):
        from core.encoders.image import EfficientNetImageEncoder

        image = EfficientNetImageEncoder()
        with_mid_level = modality in MID_LEVEL_FEATURES
        if modality == "image":
            return lambda path: image.encode_images([media.load_image(path)], with_mid_level=with_mid_level)
        return lambda path: image.encode_images(media.load_video(path, num_frames=preset.num_video_frames).frames,
                                                with_mid_level=with_mid_level)
    if modality == "audio":
        from core.encoders.audio import WhisperAudioEncoder

        audio = WhisperAudioEncoder(segments=preset.audio_segments)
        return lambda path: audio.encode_waveform(media.load_audio(path, sample_rate=16000))
    if modality == "points":
        from core.checkpoints import load_checkpoint
        from core.encoders.pointcloud import PointGroupEncoder

        encoder = PointGroupEncoder()
        if points_encoder is None or not Path(points_encoder).is_file():
            raise FileNotFoundError(f"the 3D encoder must be pre-trained first (python -m train.pretrain_points); "
                                    f"{points_encoder} does not exist")
        load_checkpoint(encoder, points_encoder)
        encoder.eval().requires_grad_(False)

        def encode_points(path: str) -> EncodedMedia:
            cloud = media.load_points(path, num_points=preset.num_points)
            return encoder.encode_cloud(cloud.xyz, cloud.rgb)

        return encode_points
    raise ValueError(f"unknown modality {modality!r}")


def _padded_cat(tokens: list[torch.Tensor], masks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Batches (n, P, T, W) with masks (n, P, T) joined along n, each padded to the largest P and T."""
    passes = max(t.shape[1] for t in tokens)
    length = max(t.shape[2] for t in tokens)
    out_tokens = torch.zeros(sum(t.shape[0] for t in tokens), passes, length, tokens[0].shape[3],
                             dtype=tokens[0].dtype)
    out_mask = torch.zeros(out_tokens.shape[:3], dtype=torch.bool)
    row = 0
    for t, m in zip(tokens, masks):
        n, p, length_t, _ = t.shape
        out_tokens[row:row + n, :p, :length_t] = t
        out_mask[row:row + n, :p, :length_t] = m
        row += n
    return {"tokens": out_tokens, "mask": out_mask}


def stack_encoded(items: list[EncodedMedia]) -> dict[str, torch.Tensor]:
    """Pad every item to the largest pass and token counts; fp16 tokens, bool mask."""
    return _padded_cat([e.tokens[None].to(torch.float16) for e in items], [e.mask[None] for e in items])


def merge_parts(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return _padded_cat([p["tokens"] for p in parts], [p["mask"] for p in parts])


def encoder_identity(modality: str, points_encoder: Path | None = None) -> dict:
    """What, besides the samples, decides a modality's cached features: the preset's loading settings and, for 3D,
    the pre-trained encoder's bytes (the other encoders are fixed downloads)."""
    from core.media import file_digest
    from core.presets.tiny import tiny_preset

    preset = tiny_preset()
    identity = {"modality": modality, "video_frames": preset.num_video_frames, "audio_segments": preset.audio_segments,
                "points": preset.num_points}
    if modality == "points" and points_encoder is not None and Path(points_encoder).is_file():
        identity["points_encoder_sha256"] = file_digest(points_encoder)
    return identity


def part_name(start: int, rows: list[dict], identity: dict) -> str:
    """A part's file name: its position, size and a digest of its manifest rows' content and encoder, so a part
    cached from other data (a regenerated world, another adapter manifest, a retrained 3D encoder) is never reused,
    while a data set moved to another folder keeps its cache (the digest leaves out the paths, as `row_digest` does)."""
    content = {"rows": [row_digest(row) for row in rows], "encoder": identity}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"part-{start:07d}-{len(rows):05d}-{digest[:12]}.safetensors"


def cache_features(data: Path, out: Path, split: str, modality: str, part_size: int = 256,
                   limit: int | None = None, points_encoder: Path | None = None) -> Path:
    """Encode every sample of the split (or the first `limit`); returns the .safetensors path."""
    rows = manifest_rows(data, split, modality)[:limit]
    target = out / split / f"{modality}.safetensors"
    parts_dir = out / split / f"{modality}.parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    encode = None  # loaded only when a part is missing: a complete cache needs no encoder
    identity = encoder_identity(modality, points_encoder)
    chunks = {start: rows[start:start + part_size] for start in range(0, len(rows), part_size)}
    parts = [parts_dir / part_name(start, chunk, identity) for start, chunk in chunks.items()]
    stale = [path for path in parts_dir.glob("part-*.safetensors") if path not in parts]
    if stale:
        log.info("removing %d cached parts of other data or another encoder from %s", len(stale), parts_dir)
        for path in stale:
            path.unlink()
    for chunk, part in zip(tqdm(chunks.values(), desc=f"{split}/{modality} parts", unit="part"), parts):
        if part.is_file():
            continue
        encode = encode or encoder_for(modality, points_encoder)
        items = [_encoded_row(encode, row, data, split) for row in chunk]
        with atomic_output(part) as partial:
            save_file(stack_encoded(items), str(partial))
    with atomic_output(target) as partial:
        save_file(merge_parts([load_file(str(part)) for part in parts]), str(partial))
    write_jsonl(target.with_suffix(".jsonl"), rows)
    return target


def _encoded_row(encode: Callable[[str], EncodedMedia], row: dict, data: Path, split: str) -> EncodedMedia:
    """One sample's features; a file the loader refuses stops the stage with the row to fix (its parts so far stay
    cached, so the rerun goes on from there)."""
    from core.media import MediaError

    try:
        return encode(row["path"])
    except MediaError as error:
        raise ValueError(f"sample {row['sample_id']} of {data}/{split}: {error}; fix the file or drop the row from "
                         "the manifest, then run this again") from error


def load_features(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """(tokens fp16 (N,P,T,W), mask (N,P,T), manifest rows) written by `cache_features`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; cache the features first: python -m train.features ...")
    stored = load_file(str(path))
    rows = read_jsonl(path.with_suffix(".jsonl"))
    if stored["tokens"].shape[0] != len(rows):
        raise ValueError(f"{path}: {stored['tokens'].shape[0]} feature rows but {len(rows)} manifest rows")
    return stored["tokens"], stored["mask"], rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/world"))
    parser.add_argument("--out", type=Path, default=Path("data/features"))
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--modality", required=True, choices=["image", "video", "audio", "points"])
    parser.add_argument("--limit", type=positive_int, default=None, help="encode only the first N samples")
    parser.add_argument("--part-size", type=positive_int, default=256)
    parser.add_argument("--points-encoder", type=Path, default=Path("assets/checkpoints/tiny/points_encoder.safetensors"))
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO)
    try:
        path = cache_features(args.data, args.out, args.split, args.modality, args.part_size, args.limit,
                              args.points_encoder)
    except (FileNotFoundError, ValueError) as error:  # no manifest or 3D encoder, or a file the loader refuses
        parser.error(str(error))
    print(path)


if __name__ == "__main__":
    main()
