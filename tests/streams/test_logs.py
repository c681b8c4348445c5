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
