"""`python -m train.adapters NAME --annotations FILE --media-dir DIR --out MANIFEST [--split train] [--only-split S]`

Turns a real data set's caption file into a manifest of SampleRecords, like the ones `python -m train.world` writes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from train.adapters import ADAPTERS
from train.adapters.msrvtt import OFFICIAL_SPLITS
from train.world.records import SPLITS, write_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.adapters", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(ADAPTERS), help="format of the caption file")
    parser.add_argument("--annotations", required=True, help="the data set's caption file (json or csv)")
    parser.add_argument("--media-dir", required=True, help="folder holding the downloaded media files")
    parser.add_argument("--out", required=True, help="manifest.jsonl to write")
    parser.add_argument("--split", default="train", help="split name stored in the records (default: train)")
    parser.add_argument("--only-split", choices=OFFICIAL_SPLITS,
                        help="msrvtt only: keep the videos of this split of the official videodatainfo.json "
                             "(default: all of them); --split still names the split stored in the records")
    args = parser.parse_args(argv)
    if args.only_split and args.name != "msrvtt":
        parser.error(f"--only-split applies to msrvtt only, not {args.name}")
    options = {"only_split": args.only_split} if args.only_split else {}
    try:
        adapted = ADAPTERS[args.name](args.annotations, args.media_dir, args.split, **options)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if not adapted.missing and not adapted.records:
        parser.error(f"{args.annotations}: 0 captioned items as a {args.name} file (looked for {adapted.looked_for}); "
                     "no manifest written")
    if not adapted.records:
        parser.error(f"none of the {len(adapted.missing)} captioned items in {args.annotations} has a media file "
                     f"under {args.media_dir} (e.g. {', '.join(adapted.missing[:3])}); no manifest written")
    write_manifest(args.out, adapted.records)
    print(f"{args.out}: {len(adapted.records)} records; {len(adapted.missing)} items without a media file"
          + (f" (e.g. {', '.join(adapted.missing[:3])})" if adapted.missing else ""))
    print(next_step(args.out, args.split, adapted.records[0].modality), file=sys.stderr)
    return 0


def next_step(out: str, split: str, modality: str) -> str:
    """How the later stages find this manifest: `train.features` and `train.qa_gen` take `--data ROOT` and read
    ROOT/<split>/<modality>/manifest.jsonl, so a manifest written elsewhere would be found by neither."""
    path = Path(out).resolve()
    if split in SPLITS and path.parts[-3:] == (split, modality, "manifest.jsonl"):
        root = path.parents[2]
        common = f"--data {root} --split {split} --modality {modality}"
        # their own --out: the defaults are the tiny world's caches, which this would overwrite
        return (f"next: python -m train.features {common} --out {root.parent / (root.name + '_features')}\n"
                f"      python -m train.qa_gen {common} --out {root.parent / (root.name + '_instructions')}")
    suggestion = split if split in SPLITS else "train"
    return (f"note: train.features and train.qa_gen read ROOT/<split>/<modality>/manifest.jsonl with <split> one of "
            f"{', '.join(SPLITS)}; write this one as --out ROOT/{suggestion}/{modality}/manifest.jsonl "
            f"(--split {suggestion}) to use it with them")


if __name__ == "__main__":
    sys.exit(main())
