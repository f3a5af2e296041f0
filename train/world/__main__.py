"""`python -m train.world --out data/world --train 6000 --val 100 --test 200 [--modalities image,audio] [--workers 2]`

Makes the tiny-world data set with a progress bar; running it again completes an interrupted run.
"""
from __future__ import annotations

import argparse
import sys

from core.schema import MODALITIES
from train.cli_types import non_negative_int, positive_int
from train.world import audio
from train.world.dataset import generate_world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.world", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/world", help="output folder (default: data/world)")
    parser.add_argument("--train", type=non_negative_int, default=2000, help="samples per modality in the train split")
    parser.add_argument("--val", type=non_negative_int, default=200, help="samples per modality in the validation split")
    parser.add_argument("--test", type=non_negative_int, default=200, help="samples per modality in the test split")
    parser.add_argument("--modalities", default=",".join(MODALITIES),
                        help=f"comma-separated subset of {','.join(MODALITIES)} (default: all)")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes to render with (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="world seed: another value draws another world")
    args = parser.parse_args(argv)
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    if any(n < 0 for n in (args.train, args.val, args.test)) or args.workers < 1:
        parser.error("sample counts must be >= 0 and --workers >= 1")
    if "audio" in modalities and not audio.speech_available():
        print("espeak-ng not found: audio clips leave out the spoken-word kind (records list it in skipped_kinds)",
              file=sys.stderr)
    try:
        seconds = generate_world(args.out, {"train": args.train, "val": args.val, "test": args.test}, modalities,
                                 workers=args.workers, world_seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    for name, spent in seconds.items():
        print(f"{name}: {spent:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
