"""`python -m core ask ...`: ask about any mix of media from a terminal, streaming the answer."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time

from core.schema import (MAX_QUESTION_CHARS, MAX_QUESTION_TOKENS, AskRequest, GenerationSettings,
                         checked_question)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="X-Modal Instruct command line")
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="ask a question about an image, audio, video and/or 3D file")
    ask.add_argument("question",
                     help=f"at most {MAX_QUESTION_CHARS:,} characters and {MAX_QUESTION_TOKENS:,} LLM tokens")
    ask.add_argument("--preset", default=os.environ.get("XMODAL_PRESET", "tiny"),
                     help="tiny (offline, CPU) or instructblip-7b (GPU); default: $XMODAL_PRESET, else %(default)s")
    ask.add_argument("--llm-dtype", choices=["float32", "bfloat16", "float16"], help="override the preset's LLM dtype")
    ask.add_argument("--quantization", choices=["none", "nf4"], help="override the preset's LLM quantisation")
    ask.add_argument("--image", help="png jpg webp bmp gif (limits: README, docs/LIMITS.md)")
    ask.add_argument("--audio", help="wav flac ogg mp3, at most 30 s")
    ask.add_argument("--video", help="mp4 webm avi mov gif, at most 120 s")
    ask.add_argument("--points", help="point cloud (npy npz ply pcd xyz txt pt) or mesh (obj stl ply glb off)")
    ask.add_argument("--optimize", action="store_true", help="rewrite and score the instruction first (IAS + ICO)")
    ask.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    ask.add_argument("--qformer-prompt", help="text the Q-Formers see instead of the question (same limits)")
    defaults = GenerationSettings()
    ask.add_argument("--decoding", choices=["greedy", "beam", "nucleus"], default=defaults.decoding,
                     help="default: %(default)s")
    ask.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens, help="1-1024, default: %(default)s")
    ask.add_argument("--temperature", type=float, default=defaults.temperature,
                     help="nucleus only; (0, 5], default: %(default)s")
    ask.add_argument("--top-p", type=float, default=defaults.top_p, help="nucleus only; (0, 1], default: %(default)s")
    ask.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty,
                     help="[1, 3], default: %(default)s")
    ask.add_argument("--num-beams", type=int, default=defaults.num_beams, help="beam only; 1-8, default: %(default)s")
    ask.add_argument("--no-prefix-cues", action="store_true", help="leave out the ' image: ' style cues")
    ask.add_argument("--projection", choices=["qformer", "linear"], default=defaults.projection,
                     help="the Q-Former or the linear-projection baseline; default: %(default)s")
    ask.add_argument("--cmaa", action="store_true", help="fuse the instruction with Cross-Modal Alignment Attention")
    ask.add_argument("--seed", type=int, default=defaults.seed, help="for nucleus sampling; default: %(default)s")
    return parser


def request_from_args(args: argparse.Namespace) -> AskRequest:
    settings = GenerationSettings(
        decoding=args.decoding, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
        repetition_penalty=args.repetition_penalty, num_beams=args.num_beams, prefix_cues=not args.no_prefix_cues,
        projection=args.projection, cmaa=args.cmaa, seed=args.seed,
    )
    return AskRequest(question=args.question, image=args.image, audio=args.audio, video=args.video,
                      points=args.points, settings=settings, optimize=args.optimize,
                      qformer_prompt=args.qformer_prompt)


def run_ask(args: argparse.Namespace) -> int:
    from core.pipeline import Pipeline, decode_media
    from core.presets import get_preset

    request = request_from_args(args)
    request.settings.validate()
    checked_question(request.question)
    if request.qformer_prompt is not None:
        checked_question(request.qformer_prompt, "the Q-Former prompt")
    overrides = {k: v for k, v in {"llm_dtype": args.llm_dtype, "quantization": args.quantization}.items() if v}
    preset = get_preset(args.preset, **overrides)
    # decoded before the model loads: a bad file is refused in a second, and decoded once all the same
    start = time.perf_counter()
    decoded = {modality: decode_media(preset, modality, path) for modality, path in request.media_paths().items()}
    decode_seconds = time.perf_counter() - start
    pipeline = Pipeline.for_preset(preset)
    result = None
    for event in pipeline.stream(request, decoded=decoded):
        if event.result is not None:
            result = event.result
        elif not args.json:
            sys.stdout.write(event.delta)
            sys.stdout.flush()
    if args.json:
        result.timings_s["decode"] = decode_seconds
        print(json.dumps(result.to_json()))
    else:
        sys.stdout.write("\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    try:  # Ctrl-C while the heavy modules import is a plain interrupt too, not a traceback
        from transformers.utils import logging as transformers_logging

        from core.checkpoints import CheckpointError
        from core.media import MediaError
        from core.sources import SourceNotFoundError
    except KeyboardInterrupt:
        return 130
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()  # the terminal shows the answer, not weight-loading bars
    try:
        return run_ask(args)
    except (MediaError, ValueError, CheckpointError, SourceNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of stdout (`| head`) has gone; flushing at exit would raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
