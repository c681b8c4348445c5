"""The worker's log filter: one line for expected failures and for mode's shutdown race,
a full traceback for anything else."""

import io
import logging

import pytest

from streams.logs import OneLineErrors, TextFormatter


def _logged(message: str, exc: Exception) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    handler.addFilter(OneLineErrors())
    logger = logging.getLogger("mode.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise exc
        except Exception as caught:
            # what mode.Service._default_stop_children logs (through its CompositeLogger)
            logger.exception(message, "<AIOKafkaConsumerThread: stopping>", caught)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def test_a_thread_loop_closed_while_stopping_is_one_line():
    text = _logged("[^---Consumer]: Error while stopping child %r: %r",
                   RuntimeError("Event loop is closed"))
    assert text.count("\n") == 1 and "Traceback" not in text
    assert "Error while stopping child '<AIOKafkaConsumerThread: stopping>': " \
        "RuntimeError('Event loop is closed')" in text


@pytest.mark.parametrize(("message", "exc"), [
    ("[^---Consumer]: Error while stopping child %r: %r", RuntimeError("something else")),
    ("[^---Consumer]: Error while stopping child %r: %r", ValueError("Event loop is closed")),
    ("[^Worker]: Crashed %r: %r", RuntimeError("Event loop is closed")),
])
def test_other_errors_keep_their_traceback(message, exc):
    text = _logged(message, exc)
    assert "Traceback (most recent call last)" in text and text.count("\n") > 2


def test_an_events_content_cannot_forge_a_log_line_nor_send_terminal_escapes():
    """A model name quoted in a dead letter's warning (attacker review): one line, escaped."""
    import orjson

    from learners.registry import ModelRegistry
    from schemas.models_file import ModelsConfig
    from schemas.settings import Settings
    from streams.processor import EventProcessor
    from streams.records import Record

    forged = "x\n[2026-01-01 00:00:00,000] ERROR streams.checkpointer: FORGED\x1b[2J\x1b[31m\x9b1m"
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("streams.processor")
    logger.addHandler(handler)
    try:
        proc = EventProcessor(Settings(topic_prefix="t."),
                              ModelRegistry(ModelsConfig.default(), 100))
        proc.partition(0)
        value = orjson.dumps({"event_id": "e1", "model": forged, "features": {"x": 1.0}})
        result = proc.process_batch([Record("t.events", 0, 0, b"k", value, None)])
    finally:
        logger.removeHandler(handler)
    assert result.dead == {"unknown_model": 1}
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line
    assert "\x1b" not in text and "\x9b" not in text
    assert "x\\n[2026-01-01 00:00:00,000] ERROR streams.checkpointer: FORGED\\x1b[2J" in text
