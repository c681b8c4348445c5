"""Where ``driftline produce`` gets events: River synthetic streams, CSV or JSONL files.

Every source yields event dicts of the input contract, in a fixed order.

>>> events = list(synthetic_events("sea", n=3, drift_at=2, seed=1, model="default"))
>>> [e["event_id"] for e in events], sorted(events[0]["features"])
(['sea-1-0', 'sea-1-1', 'sea-1-2'], ['x0', 'x1', 'x2'])
>>> type(events[0]["label"]).__name__
'bool'
"""

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from river.datasets import synth

from schemas.exceptions import ConfigError

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
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def file_events(path: Path, label_column: str | None, model: str,
                id_column: str | None = None) -> Iterator[dict[str, Any]]:
    """Events from a CSV (header row) or JSONL file; other columns become features.

    A JSONL line that already has ``features`` is taken as an event as it is
    (``model`` filled in if missing).
    """
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open("rb") as handle:
            for i, line in enumerate(handle):
                if line.strip():
                    yield _row_event(orjson.loads(line), i, path, label_column, model, id_column)
        return
    with path.open(newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            typed = {k: (_number(v) if v != "" else None) for k, v in row.items()}
            yield _row_event(typed, i, path, label_column, model, id_column)


def _row_event(row: dict[str, Any], i: int, path: Path, label_column: str | None,
               model: str, id_column: str | None) -> dict[str, Any]:
    if "features" in row:
        return {"model": model, **row}
    label = row.pop(label_column, None) if label_column else None
    event_id = str(row.pop(id_column)) if id_column else f"{path.stem}-{i}"
    event: dict[str, Any] = {"event_id": event_id, "model": model, "features": row}
    if label is not None:
        event["label"] = label
    return event
