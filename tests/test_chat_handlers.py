"""The chat handlers' bookkeeping of turns, with a stand-in pipeline: what a refused or failed answer removes."""
import gradio as gr
import pytest

from core.schema import AskResult, GenerationSettings, StreamEvent
from demo.handlers import ChatHandlers, sent, stop, undo
from demo.session import ChatSession

DEFAULTS = GenerationSettings()
VALID = ("tiny", False, "greedy", 8, DEFAULTS.temperature, DEFAULTS.top_p, DEFAULTS.repetition_penalty, 1, True,
         "qformer", False, "")
NO_MEDIA = (None, None, None, None)


class _FailingPipeline:
    """Streams one piece, lets `during` run (another event of the same session), then fails."""

    def __init__(self, during) -> None:
        self.during = during

    def stream(self, request, stop=None):
        yield StreamEvent(delta="partial")
        self.during()
        raise RuntimeError("the model broke")


class _StopAwarePipeline:
    """Answers 'a dog' token by token unless the stop switch is set, as the real pipeline's streamer does; `during`
    runs after the first token (another event of the same session)."""

    def __init__(self, during=lambda: None) -> None:
        self.during = during

    def stream(self, request, stop=None):
        answer = ""
        for index, word in enumerate(("a", " dog")):
            if stop.is_set():
                break
            answer += word
            yield StreamEvent(delta=word)
            if index == 0:
                self.during()
        yield StreamEvent(result=AskResult(answer, request.question, {"total": 0.1}, tokens_generated=len(answer)))


class _ContextFullPipeline:
    """Answers as the real pipeline does when the chat outgrew the LLM's context: its two oldest turns left out."""

    def stream(self, request, stop=None):
        yield StreamEvent(result=AskResult("a dog", request.question, {"total": 0.1}, tokens_generated=2,
                                           history_turns_dropped=2))


class _Host:
    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def get(self, preset):
        return self.pipeline


def _answered_session() -> ChatSession:
    session = ChatSession()
    first = session.start_turn("what is it", {})
    first.answer = "a cat"
    first.result = AskResult("a cat", "what is it", {"total": 0.5}, tokens_generated=3)
    return session


def test_a_failed_answer_removes_only_its_own_turn_even_after_an_undo_ran_meanwhile():
    session = _answered_session()
    handlers = ChatHandlers(_Host(_FailingPipeline(during=lambda: undo(session))))
    with pytest.raises(gr.Error, match="the model broke"):
        list(handlers.respond(session, "and now?", *NO_MEDIA, *VALID))
    assert [t.question for t in session.turns] == ["what is it"]


def test_retry_with_an_invalid_setting_keeps_the_turn_it_was_to_retry():
    session = _answered_session()
    handlers = ChatHandlers(_Host(_FailingPipeline(during=lambda: None)))
    invalid = list(VALID)
    invalid[5] = 0.0  # top_p
    with pytest.raises(gr.Error, match="Invalid setting"):
        list(handlers.retry(session, *NO_MEDIA, *invalid))
    assert [t.question for t in session.turns] == ["what is it"]


def test_a_failed_retry_keeps_the_answer_it_was_to_replace():
    session = _answered_session()
    handlers = ChatHandlers(_Host(_FailingPipeline(during=lambda: None)))
    with pytest.raises(gr.Error, match="the model broke"):
        list(handlers.retry(session, *NO_MEDIA, *VALID))
    assert [(t.question, t.answer) for t in session.turns] == [("what is it", "a cat")]


def test_a_stop_pressed_while_the_question_waits_in_the_queue_stops_it():
    session = ChatSession()
    handlers = ChatHandlers(_Host(_StopAwarePipeline()))
    sent(session)
    stop(session)  # before the queue reached the answer
    list(handlers.respond(session, "what is it", *NO_MEDIA, *VALID))
    assert session.turns[-1].stopped and session.turns[-1].answer == ""


def test_a_stop_pressed_before_a_question_is_sent_does_not_stop_it():
    session = _answered_session()
    handlers = ChatHandlers(_Host(_StopAwarePipeline()))
    stop(session)  # after the first answer had finished
    sent(session)
    list(handlers.respond(session, "and now?", *NO_MEDIA, *VALID))
    assert not session.turns[-1].stopped and session.turns[-1].answer == "a dog"


def test_undo_of_a_running_answer_stops_it_but_not_the_question_sent_after_it():
    session = ChatSession()

    def undo_and_send_again():
        undo(session)
        sent(session)

    sent(session)
    list(ChatHandlers(_Host(_StopAwarePipeline(during=undo_and_send_again))).respond(session, "what is it",
                                                                                     *NO_MEDIA, *VALID))
    assert session.turns == []
    list(ChatHandlers(_Host(_StopAwarePipeline())).respond(session, "what is it now", *NO_MEDIA, *VALID))
    assert [(t.question, t.answer, t.stopped) for t in session.turns] == [("what is it now", "a dog", False)]


def test_stop_also_stops_the_questions_waiting_behind_the_running_one_but_not_later_ones():
    session = ChatSession()
    sent(session)
    sent(session)  # sent while the first one streams: it waits in the queue
    handlers = ChatHandlers(_Host(_StopAwarePipeline(during=lambda: stop(session))))
    list(handlers.respond(session, "first", *NO_MEDIA, *VALID))
    list(ChatHandlers(_Host(_StopAwarePipeline())).respond(session, "second", *NO_MEDIA, *VALID))
    sent(session)
    list(ChatHandlers(_Host(_StopAwarePipeline())).respond(session, "third", *NO_MEDIA, *VALID))
    assert [(t.answer, t.stopped) for t in session.turns] == [("a", True), ("", True), ("a dog", False)]


def test_the_user_is_told_when_old_turns_no_longer_fit_the_context(monkeypatch):
    told = []
    monkeypatch.setattr(gr, "Info", told.append)
    handlers = ChatHandlers(_Host(_ContextFullPipeline()))
    list(handlers.respond(_answered_session(), "and now?", *NO_MEDIA, *VALID))
    assert told == ["The chat no longer fits in the model's context: its 2 oldest turns were left out of this answer."]
