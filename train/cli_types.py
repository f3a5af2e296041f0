"""Argument types shared by the training commands, so a bad count is an argparse error, not a traceback later."""
from __future__ import annotations

import argparse


def positive_int(value: str) -> int:
    """A whole number of at least 1 (threads, steps, sizes)."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {value!r}")
    return int(value)


def non_negative_int(value: str) -> int:
    """A whole number of at least 0 (counts where 0 means none, or all, as the option says)."""
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, not {value!r}")
    return int(value)
