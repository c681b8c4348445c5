"""Worker logging: one line per event worth logging, JSON when asked.

Warnings and errors about an event or a partition carry ``model``, ``topic``,
``partition`` and ``offset`` (passed as ``extra``), which both formats print: an offset
of the feedback topic is not mistaken for one of the events topic.

>>> import logging
>>> record = logging.LogRecord("driftline", logging.WARNING, __file__, 1, "refused", None, None)
>>> record.topic, record.partition, record.offset = "t.feedback", 3, 41
>>> doc = orjson.loads(JsonFormatter().format(record))
>>> doc["level"], doc["message"], doc["topic"], doc["partition"], doc["offset"]
('WARNING', 'refused', 't.feedback', 3, 41)
>>> TextFormatter().format(record).endswith("refused topic=t.feedback partition=3 offset=41")
True
"""

import logging
import sys
from datetime import UTC, datetime

import orjson

from schemas.exceptions import DriftlineError

CONTEXT = ("model", "topic", "partition", "offset")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        doc: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in CONTEXT:
            if hasattr(record, name):
                doc[name] = getattr(record, name)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


#: Control characters (C0, DEL, C1, Unicode line breaks) shown escaped in a text log line:
#: a message may quote an event's content (a model name, a dead letter's reason), which
#: must not start a forged line nor send terminal escapes.
_ESCAPES = {**{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))},
            0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def printable(text: str) -> str:
    """``text`` with its control characters escaped: one line, no terminal escapes.

    >>> print(printable("model 'x" + chr(10) + "[2026] ERROR forged" + chr(27) + "[2J'"))
    model 'x\\n[2026] ERROR forged\\x1b[2J'
    """
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """``time level logger: message model=… topic=… partition=… offset=…``; the message
    on one line (:func:`printable`), a traceback (if any) after it."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line, with the message's control characters escaped."""
        record.message = printable(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one text line (plus a traceback, if any)."""
        line = super().format(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT
                           if hasattr(record, name))
        if not context:
            return line
        head, sep, rest = line.partition("\n")
        return f"{head} {context}{sep}{rest}"


class OneLineErrors(logging.Filter):
    """Drop the traceback of a :class:`~schemas.exceptions.DriftlineError` (an expected
    failure, said in one line), whichever logger logs it (mode and Faust log a crashing
    service's exception with its traceback).

    >>> import logging
    >>> from schemas.exceptions import ConfigError
    >>> try:
    ...     raise ConfigError("bad")
    ... except ConfigError:
    ...     record = logging.LogRecord("mode", logging.ERROR, __file__, 1, "Error: %r",
    ...                                (ConfigError("bad"),), sys.exc_info())
    >>> OneLineErrors().filter(record), record.exc_info
    (True, None)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep ``record``, without its traceback when it is an expected failure's."""
        if record.exc_info and (isinstance(record.exc_info[1], DriftlineError)
                                or _closed_thread_loop(record)):
            record.exc_info = None
            record.exc_text = None
        return True


def _closed_thread_loop(record: logging.LogRecord) -> bool:
    """mode's shutdown race: a ``ServiceThread`` whose own loop already ended (the worker
    is stopping) cannot be told it stopped, and mode logs "Error while stopping child"
    with a ``RuntimeError('Event loop is closed')`` traceback. Nothing is left to stop; the
    line stays, its traceback goes."""
    exc = record.exc_info[1] if record.exc_info else None
    return (type(exc) is RuntimeError and exc.args == ("Event loop is closed",)
            and "Error while stopping child" in str(record.msg))


def configure(level: str, as_json: bool) -> None:
    """Send all logs to stderr in the chosen format; quieten chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(OneLineErrors())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
