"""One browser session's chat: its turns, the last result the analysis tabs draw, and its stop switches.

Held in a `gr.State`, so every visitor gets their own and no two users ever see each other's conversation.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.schema import AskResult

MEDIA_LABELS = {"image": "image", "audio": "audio", "video": "video", "points": "3D"}

TIMING_LABELS = {"qformer": "Q-Former", "first_token": "first token", "generate": "generate", "total": "total"}
"""Timings shown under an answer besides the encoders; 'load' is the one-off model load, so it is left out."""


@dataclass
class Turn:
    question: str
    media: dict[str, str] = field(default_factory=dict)
    answer: str = ""
    result: Optional[AskResult] = None
    stopped: bool = False


@dataclass
class ChatSession:
    turns: list[Turn] = field(default_factory=list)
    questions_sent: int = 0
    """Questions sent so far (Send, Enter, Retry). One session's answers run in the order they were sent, so the
    k-th answer to start belongs to the k-th question sent."""
    answers_started: int = 0
    stop_through: int = 0
    """Stop stops every question sent up to this count: the one answering and those still waiting in the queue."""
    _running_stop: Optional[threading.Event] = None
    """The answering question's own stop switch (made per answer: a threading.Event cannot be deep-copied, and
    Gradio deep-copies a state's initial value)."""

    def last_answered(self) -> Optional[Turn]:
        """The newest answered turn: what the attention and inspector tabs show."""
        return next((t for t in reversed(self.turns) if t.result is not None), None)

    def history(self) -> list[tuple[str, str]]:
        """Earlier (question, answer) pairs for the prompt; the turn being answered is not included."""
        return [(t.question, t.answer) for t in self.turns if t.result is not None]

    def question_sent(self) -> None:
        self.questions_sent += 1

    def begin_answer(self) -> threading.Event:
        """The stop switch of the answer starting now, already set when Stop was pressed after its question was
        sent (while it waited behind other users)."""
        self.answers_started += 1
        self._running_stop = threading.Event()
        if self.answers_started <= self.stop_through:
            self._running_stop.set()
        return self._running_stop

    def stop_all(self) -> None:
        """Stop: the running answer after its current token, and every question sent so far before it starts."""
        self.stop_through = self.questions_sent
        self.stop_running()

    def stop_running(self) -> None:
        """Stop only the running answer (its turn was undone or cleared); questions waiting behind it still run."""
        if self._running_stop is not None:
            self._running_stop.set()

    def start_turn(self, question: str, media: dict[str, str]) -> Turn:
        turn = Turn(question=question, media=dict(media))
        self.turns.append(turn)
        return turn

    def pop_turn(self) -> Optional[Turn]:
        """Remove the newest turn (undo, retry)."""
        return self.turns.pop() if self.turns else None

    def unanswered(self) -> bool:
        """True while the newest turn is still being answered."""
        return bool(self.turns) and self.turns[-1].result is None

    def discard(self, turn: Turn) -> None:
        """Remove this turn if it is still there (a refused one: undo or clear may have run while it was answered,
        so the newest turn is not necessarily it)."""
        self.turns[:] = [t for t in self.turns if t is not turn]

    def clear(self) -> None:
        self.turns.clear()

    def messages(self) -> list[dict]:
        """The conversation in `gr.Chatbot`'s message format, each answer followed by its timings line."""
        out: list[dict] = []
        for turn in self.turns:
            out.append({"role": "user", "content": turn.question + _media_note(turn.media)})
            if turn.answer or turn.result is not None:
                footer = timings_line(turn.result) if turn.result is not None else ""
                stopped = " *(stopped)*" if turn.stopped else ""
                out.append({"role": "assistant", "content": turn.answer + stopped + footer})
        return out


def _media_note(media: dict[str, str]) -> str:
    return f"\n\n<sub>attached: {attached_names(media)}</sub>" if media else ""


def attached_names(media: dict[str, str]) -> str:
    """'image: cat.jpg, 3D: cone.glb' for the files given (empty paths left out)."""
    return ", ".join(f"{MEDIA_LABELS[kind]}: {Path(path).name}" for kind, path in media.items() if path)


def timings_line(result: AskResult) -> str:
    """'encode image 0.12 s · Q-Former 0.05 s · first token 0.4 s · total 1.1 s · 8 tokens at 9.5 tokens/s'."""
    t = result.timings_s
    parts = [f"encode {k[len('encode_'):]} {v:.2f} s" + (" (cached)" if v == 0 else "")
             for k, v in t.items() if k.startswith("encode_")]
    if result.optimizer is not None:
        steps = result.optimizer.timings_s
        parts.append(f"optimiser {steps.get('total', sum(steps.values())):.2f} s")
    parts += [f"{label} {t[key]:.2f} s" for key, label in TIMING_LABELS.items() if key in t]
    rate = f" at {t['tokens_per_s']:.1f} tokens/s" if "tokens_per_s" in t else ""
    count = result.tokens_generated
    parts.append(f"{count} token{'' if count == 1 else 's'}{rate}")
    return "\n\n<sub>" + " · ".join(parts) + "</sub>"
