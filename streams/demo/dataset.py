"""What the demo sends: a River stream with known drifts (or a dataset River ships), one
event per row and model, and a few malformed messages of different kinds.

The synthetic default is River's SEA generator whose concept changes abruptly twice:
variant 0 (label: x0 + x1 > 8), then variant 3 (> 9.5) from a third of the stream,
then variant 0 again from two thirds.

>>> s = load("sea", 9, seed=1)
>>> len(s.rows), s.drifts, sorted(s.rows[0][0])
(9, (3, 6), ['x0', 'x1', 'x2'])
>>> [(x["x0"] + x["x1"] > t) == y for (x, y), t in zip(s.rows, [8] * 3 + [9.5] * 3 + [8] * 3)]
[True, True, True, True, True, True, True, True, True]
>>> load("phishing", 100, seed=1).drifts
()
>>> [m.reason for m in malformed(["a"], binary=True)][:3]
['invalid_json', 'invalid_encoding', 'invalid_event']
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from river import datasets
from river.datasets import synth

from schemas import constants
from schemas.constants import MAX_EVENT_BYTES
from schemas.exceptions import ConfigError

Row = tuple[dict[str, Any], Any]

#: Datasets River ships inside its package (no download): name -> (class, multiclass).
REAL: dict[str, tuple[Callable[[], Any], bool]] = {
    "phishing": (datasets.Phishing, False),
    "bananas": (datasets.Bananas, False),
    "shuttle": (datasets.Shuttle, False),
    "segment": (datasets.ImageSegments, True),
}
DATASETS = ("sea", *REAL)


@dataclass(frozen=True)
class DemoStream:
    """Rows in stream order, and the row indices where the concept is known to change."""

    name: str
    description: str
    rows: list[Row]
    drifts: tuple[int, ...]
    multiclass: bool

    @property
    def labels(self) -> list[Any]:
        """Each row's label, in stream order."""
        return [y for _, y in self.rows]

    def models_file(self) -> str:
        """The shipped models file (TOML text) that fits this stream's labels."""
        name = "models_multiclass.toml" if self.multiclass else "models.toml"
        return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _named(x: dict[Any, Any]) -> dict[str, Any]:
    return {(f"x{k}" if isinstance(k, int) else str(k)): v for k, v in x.items()}


def sea(n: int, seed: int) -> DemoStream:
    """``n`` rows of SEA with abrupt concept changes at n/3 and 2n/3."""
    drifts = (n // 3, 2 * n // 3)
    concepts = [synth.SEA(variant=0, seed=seed), synth.SEA(variant=3, seed=seed + 1),
                synth.SEA(variant=0, seed=seed + 2)]
    lengths = (drifts[0], drifts[1] - drifts[0], n - drifts[1])
    rows = [(_named(x), y) for concept, length in zip(concepts, lengths, strict=True)
            for x, y in itertools.islice(concept, length)]
    return DemoStream("sea", "River SEA, label x0 + x1 > 8, then > 9.5, then > 8 again",
                      rows, drifts, multiclass=False)


def load(name: str, n: int, seed: int) -> DemoStream:
    """The stream called ``name`` (see :data:`DATASETS`), at most ``n`` rows.

    Raises:
        ConfigError: ``name`` is not one of :data:`DATASETS`.
    """
    if name == "sea":
        return sea(n, seed)
    if name not in REAL:
        raise ConfigError(f"unknown dataset '{name}'; choose from {', '.join(DATASETS)}")
    make, multiclass = REAL[name]
    dataset = make()
    rows = [(_named(x), y) for x, y in itertools.islice(dataset, n)]
    return DemoStream(name, f"River's {type(dataset).__name__} dataset ({len(rows):,} rows, "
                      "real data: no known drift points)", rows, (), multiclass)


@dataclass(frozen=True)
class Malformed:
    """One bad message and the dead-letter reason the worker must give it."""

    reason: str
    what: str
    key: bytes
    value: bytes | None


def malformed(models: list[str], binary: bool) -> list[Malformed]:
    """One message of each kind of mistake the worker must turn into a dead letter."""
    model = models[0]
    bad = [
        Malformed("invalid_json", "not JSON", b"bad-json", b'{"event_id": "oops",'),
        Malformed("invalid_encoding", "not UTF-8", b"bad-utf8",
                  b'{"event_id": "caf\xe9", "model": "x", "features": {"a": 1}}'),
        Malformed("invalid_event", "no features", b"bad-schema",
                  orjson.dumps({"event_id": "no-features", "model": model})),
        Malformed("invalid_event", "a feature that is a list", b"bad-feature",
                  orjson.dumps({"event_id": "list-feature", "model": model,
                                "features": {"x0": [1, 2]}})),
        Malformed("unknown_model", "a model nobody configured", b"bad-model",
                  orjson.dumps({"event_id": "who", "model": "no-such-model",
                                "features": {"x0": 1.0}})),
        Malformed("tombstone", "a null value", b"bad-null", None),
        Malformed("too_large", "over the 1 MiB limit", b"bad-size",
                  b'{"event_id": "big", "pad": "' + b"x" * MAX_EVENT_BYTES + b'"}'),
    ]
    if binary:
        bad.append(Malformed("invalid_label", "a text label for a yes/no model", b"bad-label",
                             orjson.dumps({"event_id": "text-label", "model": model,
                                           "features": {"x0": 1.0}, "label": "maybe"})))
    return bad


@dataclass(frozen=True)
class Message:
    """One Kafka message to send; ``row`` is the stream row it carries (None if malformed
    or a late label); ``topic`` the topic's suffix (events, or feedback for late labels)."""

    key: bytes
    value: bytes | None
    row: int | None
    topic: str = constants.EVENTS


def messages(stream: DemoStream, models: list[str], bad: list[Malformed],
             label_delay: int = 0) -> Iterator[Message]:
    """Every row once per model (key: the row's event id), with ``bad`` spread evenly.

    With ``label_delay`` > 0 the events carry no label: each row's label goes to the
    feedback topic (one per model) after ``label_delay`` more rows, the last ones at the end.

    >>> s = load("sea", 4, seed=1)
    >>> out = list(messages(s, ["a", "b"], malformed(["a"], binary=True)[:1]))
    >>> [(m.key, m.row) for m in out][:4]
    [(b'sea-0', 0), (b'sea-0', 0), (b'sea-1', 1), (b'sea-1', 1)]
    >>> len(out), out[4].row
    (9, None)
    >>> late = list(messages(s, ["a"], [], label_delay=2))
    >>> [(m.topic, m.key) for m in late]  # doctest: +NORMALIZE_WHITESPACE
    [('events', b'sea-0'), ('events', b'sea-1'), ('events', b'sea-2'), ('feedback', b'sea-0'),
     ('events', b'sea-3'), ('feedback', b'sea-1'), ('feedback', b'sea-2'),
     ('feedback', b'sea-3')]
    >>> sorted(orjson.loads(late[0].value)), sorted(orjson.loads(late[3].value))
    (['event_id', 'features', 'model'], ['event_id', 'label', 'model'])
    """
    n = len(stream.rows)
    slots = {(k + 1) * n // (len(bad) + 1): m for k, m in enumerate(bad)}
    for i, (x, y) in enumerate(stream.rows):
        if i in slots:
            yield Message(slots[i].key, slots[i].value, None)
        event_id = event_id_of(stream.name, i)
        for model in models:
            event = {"event_id": event_id, "model": model, "features": x}
            if not label_delay:
                event["label"] = y
            yield Message(event_id.encode(), orjson.dumps(event), i)
        if label_delay and i >= label_delay:
            yield from _labels(stream, models, i - label_delay)
    if label_delay:
        for row in range(max(0, n - label_delay), n):
            yield from _labels(stream, models, row)


def _labels(stream: DemoStream, models: list[str], row: int) -> Iterator[Message]:
    """The late labels of ``row``, one feedback message per model."""
    event_id = event_id_of(stream.name, row)
    for model in models:
        yield Message(event_id.encode(), orjson.dumps(
            {"event_id": event_id, "model": model, "label": stream.rows[row][1]}), None,
            constants.FEEDBACK)


def event_id_of(name: str, row: int) -> str:
    """The event id of row ``row`` of stream ``name``.

    >>> event_id_of("sea", 7), row_of("sea-7")
    ('sea-7', 7)
    """
    return f"{name}-{row}"


def row_of(event_id: str) -> int:
    """The row an event id of :func:`event_id_of` names."""
    return int(event_id.rsplit("-", 1)[1])
