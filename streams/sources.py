"""Where ``driftline produce`` gets events: River synthetic streams, CSV or JSONL files;
and late labels: feedback files, or labels withheld from events and sent later.

Every source yields event dicts of the input contract, in a fixed order.

>>> events = list(synthetic_events("sea", n=3, drift_at=2, seed=1, model="default"))
>>> [e["event_id"] for e in events], sorted(events[0]["features"])
(['sea-1-0', 'sea-1-1', 'sea-1-2'], ['x0', 'x1', 'x2'])
>>> type(events[0]["label"]).__name__
'bool'
"""

import csv
import heapq
import itertools
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from river.datasets import synth

from schemas.constants import EVENTS, FEEDBACK, MAX_EVENT_BYTES, MAX_FEEDBACK_BYTES
from schemas.event import Event
from schemas.exceptions import ConfigError
from schemas.feedback import Feedback

#: name -> (concept before the drift, concept after): SEA variants change the
#: threshold of x0 + x1 (8 -> 9.5), an abrupt concept drift River documents.
SYNTHETIC = {
    "sea": (lambda seed: synth.SEA(variant=0, seed=seed),
            lambda seed: synth.SEA(variant=3, seed=seed + 1)),
    "agrawal": (lambda seed: synth.Agrawal(classification_function=0, seed=seed),
                lambda seed: synth.Agrawal(classification_function=2, seed=seed + 1)),
}


def synthetic_events(name: str, n: int, drift_at: int | None, seed: int,
                     model: str) -> Iterator[dict[str, Any]]:
    """``n`` labelled events of a River generator, its concept switching at ``drift_at``."""
    if name not in SYNTHETIC:
        raise ConfigError(f"unknown synthetic stream '{name}'; choose from {', '.join(SYNTHETIC)}")
    before, after = SYNTHETIC[name]
    stream: Iterator[tuple[dict[Any, Any], Any]] = iter(before(seed))
    if drift_at is not None:
        stream = itertools.chain(itertools.islice(stream, drift_at), after(seed))
    for i, (x, y) in enumerate(itertools.islice(stream, n)):
        features = {(f"x{k}" if isinstance(k, int) else str(k)): v for k, v in x.items()}
        yield {"event_id": f"{name}-{seed}-{i}", "model": model, "features": features,
               "label": y}


def _number(text: str) -> Any:
    """A CSV cell as JSON would have it: true/false, a number, an empty cell as null, or text.

    >>> [_number(t) for t in ("true", "False", "3", "2.5", "", "spam")]
    [True, False, 3, 2.5, None, 'spam']
    """
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if not lowered:
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def file_events(path: Path, label_column: str | None, model: str,
                id_column: str | None = None) -> Iterator[dict[str, Any]]:
    """Events from a CSV (header row) or JSONL file; other columns become features.

    The event id is ``id_column``'s cell, else ``<file stem>-<row index from 0>``. A JSONL
    line that already has ``features`` is taken as an event as it is (``model`` filled in
    if missing) and must match the event schema. Errors (:class:`ConfigError`, one line):
    a ``label_column`` or ``id_column`` the CSV header (or every JSONL row) lacks, an empty
    id cell, a line that is not a JSON object or not a valid event.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "data.csv"
    >>> _ = path.write_text("a,y\\n1,true\\n")
    >>> list(file_events(path, "y", "default"))
    [{'event_id': 'data-0', 'model': 'default', 'features': {'a': 1}, 'label': True}]
    >>> list(file_events(path, "nosuch", "default"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemas.exceptions.ConfigError: .../data.csv: no column 'nosuch' (columns: a, y)
    """
    wanted = [column for column in (label_column, id_column) if column]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        if wanted:  # a first pass: a key no plain row has is a typo, not a gap
            columns: dict[str, None] = {}  # in order of appearance
            for _, row in _jsonl_rows(path):
                if "features" not in row:
                    columns.update(dict.fromkeys(row))
            if columns:
                _check_columns(path, wanted, list(columns))
        for number, row in _jsonl_rows(path):
            where = f"{path}:{number}"
            if "features" in row:
                yield _validated(Event, {"model": model, **row}, where)
            else:
                yield _row_event(row, number - 1, where, path, label_column, model, id_column)
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            _check_columns(path, wanted, list(reader.fieldnames or []))
            for i, row in enumerate(reader):
                typed = {k: (_number(v) if v != "" else None) for k, v in row.items()}
                yield _row_event(typed, i, f"{path}:{reader.line_num}", path, label_column,
                                 model, id_column)
        except csv.Error as exc:  # e.g. a cell beyond the csv module's field size limit
            raise ConfigError(f"{path}:{reader.line_num}: {exc}") from None


def _check_columns(path: Path, wanted: list[str], columns: list[str]) -> None:
    for column in wanted:
        if column not in columns:
            raise ConfigError(f"{path}: no column '{column}' (columns: {', '.join(columns)})")


def _row_event(row: dict[str, Any], i: int, where: str, path: Path, label_column: str | None,
               model: str, id_column: str | None) -> dict[str, Any]:
    """The event of row ``i`` (``where``: file:line, for errors) of a CSV or JSONL file."""
    label = row.pop(label_column, None) if label_column else None
    if id_column:
        cell = row.pop(id_column, None)
        if cell is None or str(cell) == "":
            raise ConfigError(f"{where}: no event id in column '{id_column}'")
        event_id = str(cell)
    else:
        event_id = f"{path.stem}-{i}"
    event: dict[str, Any] = {"event_id": event_id, "model": model, "features": row}
    if label is not None:
        event["label"] = label
    return event


def _validated(schema: type[BaseModel], message: dict[str, Any],
               where: str) -> dict[str, Any]:
    """``message`` as it is if it matches ``schema``, else a one-line :class:`ConfigError`
    naming ``where`` (file:line) and the first error."""
    try:
        schema.model_validate(message)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{where}: {field + ': ' if field else ''}{first['msg']}") from None
    return message


def withhold_labels(events: Iterable[dict[str, Any]], min_delay: int, max_delay: int,
                    seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Events without their labels, and each label as a feedback message ``d`` events
    later (``d`` uniform in ``[min_delay, max_delay]``, seeded): (topic suffix, message).

    Events that have no label pass through alone; labels still due at the end follow the
    last event, in the order they were due.

    >>> events = [{"event_id": f"e{i}", "model": "m", "features": {"x": i}, "label": i % 2 == 0}
    ...           for i in range(3)]
    >>> [(topic, m["event_id"], "label" in m) for topic, m in withhold_labels(events, 1, 1, 0)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('events', 'e0', False), ('events', 'e1', False), ('feedback', 'e0', True),
     ('events', 'e2', False), ('feedback', 'e1', True), ('feedback', 'e2', True)]
    """
    if not 0 <= min_delay <= max_delay:
        raise ConfigError(f"label delay {min_delay}:{max_delay}: need 0 <= MIN <= MAX")
    rng = random.Random(seed)
    due: list[tuple[int, int, dict[str, Any]]] = []
    for i, event in enumerate(events):
        label = event.get("label")
        unlabelled = {k: v for k, v in event.items() if k != "label"}
        yield EVENTS, unlabelled
        if label is not None:
            feedback = {"event_id": event["event_id"], "model": event["model"], "label": label}
            heapq.heappush(due, (i + rng.randint(min_delay, max_delay), i, feedback))
        while due and due[0][0] <= i:
            yield FEEDBACK, heapq.heappop(due)[2]
    while due:
        yield FEEDBACK, heapq.heappop(due)[2]


def parse_delay(text: str) -> tuple[int, int]:
    """``MIN:MAX`` (events) as two integers.

    >>> parse_delay("50:5000")
    (50, 5000)
    >>> parse_delay("5")
    Traceback (most recent call last):
    ...
    schemas.exceptions.ConfigError: --label-delay '5': expected MIN:MAX, two whole numbers of events
    """
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return int(low), int(high)
    except ValueError:
        raise ConfigError(f"--label-delay '{text}': expected MIN:MAX, two whole numbers of "
                          "events") from None


def _jsonl_rows(path: Path, limit: int = MAX_EVENT_BYTES) -> Iterator[
        tuple[int, dict[str, Any]]]:
    """(line number from 1, object) of each non-blank line of a JSONL file; a line that is
    not a JSON object, or longer than ``limit`` bytes (the worker would only dead-letter it
    as ``too_large``; the broker may refuse it), is a one-line :class:`ConfigError`
    ``file:line: ...``."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if len(line.rstrip(b"\r\n")) > limit:
                raise ConfigError(f"{path}:{number}: the line is {len(line)} bytes; a message "
                                  f"takes at most {limit}")
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON object: {exc}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{number}: not a JSON object")
            yield number, row


def feedback_file(path: Path) -> Iterator[dict[str, Any]]:
    """Feedback messages from a JSONL file, one object a line, sent as they are; each must
    match the feedback schema (:class:`schemas.feedback.Feedback`), else a one-line
    :class:`ConfigError` ``file:line: field: first error``."""
    for number, message in _jsonl_rows(path, MAX_FEEDBACK_BYTES):
        yield _validated(Feedback, message, f"{path}:{number}")
