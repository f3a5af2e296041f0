"""`python -m core.convert_xinstructblip IN.pth OUT_DIR`: an X-InstructBLIP checkpoint -> our bridge files.

Writes `OUT_DIR/<modality>.safetensors` with a `<modality>.json` beside it for each Q-Former in the file
(modalities image, video, audio, points; the reference calls 3D `pc`). The GPU preset reads these like the `.pth`,
but faster and without any pickle.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from core.checkpoints import save_checkpoint
from core.reference_checkpoint import ReferenceCheckpointError
from core.xinstructblip_import import REFERENCE_PREFIXES, bridge_config, build_bridge, import_xinstructblip


def convert(source: Path, out_dir: Path, modalities: list[str] | None = None,
            dtype: torch.dtype = torch.float32) -> list[Path]:
    """Import, check and write each modality's bridge; returns the files written."""
    written = []
    for modality, imported in import_xinstructblip(source, modalities).items():
        path = out_dir / f"{modality}.safetensors"
        save_checkpoint(build_bridge(imported), path, bridge_config(imported), dtype=dtype)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.convert_xinstructblip", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="X-InstructBLIP checkpoint (.pth), read with weights_only=True")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--modality", action="append", choices=sorted(REFERENCE_PREFIXES),
                        help="convert only this modality (repeatable); default: every one in the file")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                        help="stored precision (float16 halves the files)")
    args = parser.parse_args(argv)
    try:
        written = convert(args.source, args.out_dir, args.modality, getattr(torch, args.dtype))
    except ReferenceCheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
