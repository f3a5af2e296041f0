"""The Instruction inspector tab's content for one answered turn: why the optimiser picked the instruction it used.

Shows every candidate with its IAS (lower is better), the rewrites the filters dropped (with the reason, below the
scored ones), the per-token NLL behind each score, the in-context comparison prompt, the final instruction as a word
diff against the original, and the answer it produced; the status says when Stop cut the optimiser short.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Optional

import plotly.graph_objects as go

from demo import plots
from demo.session import Turn

CANDIDATE_COLUMNS = ["source", "instruction", "IAS (lower is better)", "tokens", "used"]
DIFF_COLOURS = {"added": "#2ca02c", "removed": "#d62728"}


@dataclass
class InspectorView:
    status: str
    candidates: list[list]
    token_nll: go.Figure
    in_context_prompt: str
    diff: list[tuple[str, Optional[str]]]
    answer: str


def inspector_view(turn: Optional[Turn]) -> InspectorView:
    if turn is None or turn.result is None:
        return _empty("Ask a question with **Optimise the instruction** on (in Settings) to inspect it here.")
    trace = turn.result.optimizer
    if trace is None:
        return _empty("The last answer ran without the optimiser. Turn on **Optimise the instruction** in "
                      "Settings and ask again.")
    ranked = sorted(trace.candidates, key=lambda c: c.ias)
    final = trace.final_instruction.strip()
    rows = [[c.source, c.instruction, round(c.ias, 4), len(c.tokens), "\u2713" if c.instruction.strip() == final else ""]
            for c in ranked]
    rows += [[f"dropped: {reason}", text, None, None, ""] for text, reason in trace.rejected.items()]
    # in the table's order, each chart named by its rank and wording (two rewrites share a source)
    figure = (plots.token_nll_figure([(_chart_title(rank, c, final), plots.readable_tokens(c.tokens), c.token_nll)
                                      for rank, c in enumerate(ranked, 1)])
              if ranked else plots.placeholder_figure("No candidate was scored."))  # stopped while rewriting
    original = next((c.instruction for c in trace.candidates if c.source == "original"), turn.question)
    dropped = f", {_count(len(trace.rejected), 'rewrite')} dropped by the filters" if trace.rejected else ""
    status = (f"{_count(len(trace.candidates), 'candidate')} scored{dropped}; the instruction used "
              f"{'is the original' if final == original.strip() else 'differs from the original'}: {final!r}.")
    if not trace.in_context_prompt and not trace.stopped:
        status += " No in-context comparison ran: no rewrite survived the filters, so there was nothing to compare."
    if trace.stopped:  # otherwise a short candidate list reads as the optimiser's choice
        status = f"**The optimiser was stopped by Stop; its remaining steps were skipped.** {status}"
    return InspectorView(status=status, candidates=rows, token_nll=figure,
                         in_context_prompt=trace.in_context_prompt,
                         diff=word_diff(original, trace.final_instruction), answer=turn.result.answer)


def _chart_title(rank: int, candidate, final: str, width: int = 60) -> str:
    text = candidate.instruction.strip()
    used = ", used" if text == final else ""  # before shortening: a long final instruction is used all the same
    text = text if len(text) <= width else text[:width - 1] + "…"
    return f"{rank}. {candidate.source}{used}: IAS {candidate.ias:.3f}, {text!r}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _empty(status: str) -> InspectorView:
    return InspectorView(status=status, candidates=[], token_nll=plots.placeholder_figure("No candidates yet."),
                         in_context_prompt="", diff=[], answer="")


def word_diff(original: str, final: str) -> list[tuple[str, Optional[str]]]:
    """`final` against `original` word by word, for `gr.HighlightedText`: kept words unlabelled, others labelled
    'added' or 'removed'."""
    before, after = original.split(), final.split()
    out: list[tuple[str, Optional[str]]] = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if op == "equal":
            out.append((" ".join(after[b0:b1]) + " ", None))
            continue
        if a1 > a0:
            out.append((" ".join(before[a0:a1]) + " ", "removed"))
        if b1 > b0:
            out.append((" ".join(after[b0:b1]) + " ", "added"))
    return out
