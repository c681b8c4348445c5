"""Late labels: join feedback to the exact prediction it labels, then learn with delay.

Pure (no Kafka, no Redis, no wall clock). One :class:`PendingPredictions` per
(model, partition) keeps, for every unlabelled event scored, the features exactly as
scored, the prediction (class and probabilities, value or score) and the event's time;
one :class:`PartitionFeedback` per partition owns those stores and the partition's
clock. Time is event time only: the watermark is the largest Kafka record timestamp
(ms) seen on the partition's events and feedback records, so replaying the same
records in the same order reaches the same decisions.

What happens to a feedback, and to a pending prediction (each counted by outcome):

- ``matched``: its event is pending: the label is learned now (a :class:`Join`), the
  entry dropped and its id remembered as learned.
- ``duplicate``: its event was already learned (remembered for ``ttl`` of event time
  after learning, at most ``max_pending`` ids), or another feedback for it is already
  held: counted and ignored.
- ``early``: no pending prediction (yet): held up to ``grace`` of event time; joined
  (then ``matched``) if its event comes, else ``unmatched``.
- ``unmatched``: grace passed (or the held buffer overflowed): the original record comes
  back in :attr:`FeedbackResult.unmatched` for an ``unmatched_feedback`` dead letter.
  Feedback for an unknown, expired or evicted event takes this way.
- ``expired`` / ``evicted``: a pending prediction older than ``ttl``, or the oldest
  when ``max_pending`` are waiting (or replaced by a newer event with the same id).

Every feedback ends ``matched``, ``duplicate`` or ``unmatched`` exactly once;
``early`` also counts those that waited. An entry's time is the partition's watermark
when it was added (its record's timestamp, unless records came out of time order),
so entries age first-in first-out and expiry and eviction are O(1) each.

Every change is remembered for the next checkpoint
(:meth:`PendingPredictions.changes_since_last_checkpoint`); see
``learners/feedback_codec.py`` and "Late labels" in ``docs/architecture.md``.

>>> from learners.learner import Learner
>>> from schemas.models_file import ModelSpec
>>> spec = ModelSpec(task="classification", pipeline="linear_model.LogisticRegression()")
>>> part = PartitionFeedback(lambda model: PendingPredictions.for_spec(spec, grace=60.0))
>>> learner = Learner.from_spec(spec, cooldown=100)
>>> step = learner.step({"x": 2.0}, None)                    # scored, no label yet
>>> part.scored("m", "e1", 10, {"x": 2.0}, (step.prediction, None), record_ms=1_000).counts
Counter()
>>> got = part.feedback("m", "e1", True, Received(3, b"k", b"{}", 61_000))
>>> got.counts, [j.entry.event_id for j in got.joins]
(Counter({'matched': 1}), ['e1'])
>>> learn_delayed(learner, got.joins[0].entry.features, got.joins[0].entry.scored,
...               got.joins[0].label).learned, learner.n_learned
(True, 1)
>>> part.feedback("m", "e1", True, Received(4, b"k", b"{}", 62_000)).counts
Counter({'duplicate': 1})
>>> held = part.feedback("m", "nope", False, Received(5, b"k", b"{}", 63_000))
>>> held.counts, part.advance(123_001).unmatched[0][1].offset
(Counter({'early': 1}), 5)
"""

from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from learners.drift import DriftSignal
from schemas.models_file import ModelSpec

Outcome = Literal["matched", "duplicate", "unmatched", "early", "expired", "evicted"]
OUTCOMES: tuple[Outcome, ...] = ("matched", "duplicate", "unmatched", "early", "expired",
                                 "evicted")
#: The prediction as published: (class, value or score; probabilities of classifiers).
Scored = tuple[Any, dict[Any, float] | None]
#: Checkpoint field kinds: a pending prediction, a held (early) feedback, a learned id.
PENDING, EARLY, LEARNED = "p", "e", "l"
Field = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """One unlabelled prediction waiting for its feedback.

    ``names``/``values`` are the features exactly as scored (order and types kept; all
    floats are packed in an ``array('d')``, bit for bit); ``prediction`` and, for
    classifiers, ``classes``/``probs`` what was published; ``offset`` is the event's
    offset on the events topic; ``event_ms`` its time on the partition's clock (epoch ms).
    Compact on purpose: a store holds up to a million of them.
    """

    event_id: str
    offset: int
    event_ms: int
    names: tuple[str, ...]
    values: tuple[Any, ...] | array
    prediction: Any
    classes: tuple[Any, ...] | None
    probs: array | None

    @property
    def features(self) -> dict[str, Any]:
        """The features as scored, as a fresh dict (same keys, order, values)."""
        return dict(zip(self.names, self.values, strict=True))

    @property
    def scored(self) -> Scored:
        """(prediction, probabilities or None), as when the event was scored."""
        if self.classes is None or self.probs is None:
            return self.prediction, None
        return self.prediction, dict(zip(self.classes, self.probs, strict=True))


def pack(values: Iterable[Any]) -> tuple[Any, ...] | array:
    """Values as stored: an ``array('d')`` when all are floats (exact), else a tuple.

    >>> pack([1.5, 2.0]), pack([1, 2.0])
    (array('d', [1.5, 2.0]), (1, 2.0))
    """
    values = tuple(values)
    if all(type(v) is float for v in values):
        return array("d", values)
    return values


@dataclass(frozen=True, slots=True)
class Received:
    """A consumed feedback record: where it was, its key and bytes, its timestamp (ms)."""

    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int | None


@dataclass(frozen=True, slots=True)
class HeldFeedback:
    """A feedback that came before its event (or for no known event), waiting ``grace``."""

    event_id: str
    label: Any
    offset: int
    held_ms: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Join:
    """A label to learn now, for ``entry`` (``feedback_offset`` on the feedback topic)."""

    model: str
    entry: PendingEntry
    label: Any
    feedback_offset: int
    #: The feedback record's key and bytes (its dead letter, if the label is refused).
    key: bytes | None = None
    value: bytes = b""


@dataclass(slots=True)
class FeedbackResult:
    """What one call did: labels to learn (in this order), (model, feedback) for
    ``unmatched_feedback`` dead letters (original record kept), and counts by outcome."""

    joins: list[Join] = field(default_factory=list)
    unmatched: list[tuple[str, HeldFeedback]] = field(default_factory=list)
    counts: Counter[Outcome] = field(default_factory=Counter)
    #: The same counts by (model, outcome), for ``driftline_feedback_total``.
    by_model: Counter[tuple[str, Outcome]] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Delta:
    """Changes since the last checkpoint: what to write, what to delete, and what each
    changed field held at the last checkpoint (``None``: absent) to undo them."""

    added: dict[Field, PendingEntry | HeldFeedback | int]
    removed: list[Field]
    before: dict[Field, PendingEntry | HeldFeedback | int | None]

    def then(self, later: "Delta") -> "Delta":
        """One delta with the effect of this one followed by ``later`` (to coalesce
        checkpoints whose writes did not happen)."""
        added = {f: v for f, v in self.added.items() if f not in later.before}
        added.update(later.added)
        removed = [f for f in self.removed if f not in later.before] + later.removed
        return Delta(added, removed, {**later.before, **self.before})


_ABSENT = object()


class PendingPredictions:
    """Pending predictions, held early feedback and learned ids of one (model, partition).

    Parameters
    ----------
    ttl_ms
        Event time (ms) a prediction waits for its label, and a learned id is remembered.
    grace_ms
        Event time (ms) a feedback waits for its event.
    max_pending
        Most predictions waiting (also the most held feedback and remembered ids).
    """

    def __init__(self, ttl_ms: int, grace_ms: int, max_pending: int) -> None:
        self.ttl_ms = ttl_ms
        self.grace_ms = grace_ms
        self.max_pending = max_pending
        self.entries: dict[str, PendingEntry] = {}
        self.early: dict[str, HeldFeedback] = {}
        self.learned: dict[str, int] = {}
        # Arrival order, with lazy deletion: an item is live while its dict holds it.
        self._entry_order: deque[PendingEntry] = deque()
        self._early_order: deque[HeldFeedback] = deque()
        self._learned_order: deque[tuple[str, int]] = deque()
        self._dirty: dict[Field, Any] = {}
        #: Every outcome so far (checkpointed with the store, so a restored worker's
        #: totals equal an uninterrupted one's; Prometheus counts per process).
        self.totals: Counter[Outcome] = Counter()
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}

    @classmethod
    def for_spec(cls, spec: ModelSpec, grace: float) -> "PendingPredictions":
        """A store with the model's ``feedback_ttl``/``feedback_max_pending`` (seconds) and
        the worker's grace (seconds)."""
        return cls(round(spec.feedback_ttl * 1000), round(grace * 1000),
                   spec.feedback_max_pending)

    def __len__(self) -> int:
        return len(self.entries)

    # -- the three events ------------------------------------------------------------------
    def add(self, event_id: str, offset: int, features: dict[str, Any], scored: Scored,
            now_ms: int) -> tuple[PendingEntry | None, HeldFeedback | None, Counter[Outcome]]:
        """Keep an unlabelled prediction; returns (entry, held feedback to join now, counts).

        When a feedback for ``event_id`` is held, the entry is not kept: the caller learns
        it at once (the returned pair), exactly as if the feedback came just after.
        """
        counts: Counter[Outcome] = Counter()
        prediction, proba = scored
        classes = None if proba is None else self._shared(tuple(proba))
        entry = PendingEntry(event_id, offset, now_ms, self._shared(tuple(features)),
                             pack(features.values()), prediction, classes,
                             None if proba is None else array("d", proba.values()))
        if event_id in self.learned:
            self._set(LEARNED, event_id, self.learned, None)
        held = self.early.get(event_id)
        if held is not None:
            self._set(EARLY, event_id, self.early, None)
            self._remember(event_id, now_ms)
            counts["matched"] += 1
            self.totals.update(counts)
            return entry, held, counts
        if event_id in self.entries:
            counts["evicted"] += 1
        elif len(self.entries) >= self.max_pending:
            self._pop_oldest_entry()
            counts["evicted"] += 1
        self._set(PENDING, event_id, self.entries, entry)
        self._entry_order.append(entry)
        self.totals.update(counts)
        return None, None, counts

    def match(self, event_id: str, label: Any, received: Received,
              now_ms: int) -> tuple[PendingEntry | None, list[HeldFeedback], Counter[Outcome]]:
        """Join a feedback: (entry to learn or None, feedback now unmatched, counts)."""
        counts: Counter[Outcome] = Counter()
        entry = self.entries.get(event_id)
        if entry is not None:
            self._set(PENDING, event_id, self.entries, None)
            self._remember(event_id, now_ms)
            counts["matched"] += 1
            self.totals.update(counts)
            return entry, [], counts
        if event_id in self.learned or event_id in self.early:
            counts["duplicate"] += 1
            self.totals.update(counts)
            return None, [], counts
        if not self.max_pending:  # late labels are off for this model: nothing waits
            counts["unmatched"] += 1
            self.totals.update(counts)
            return None, [HeldFeedback(event_id, label, received.offset, now_ms, received.key,
                                       received.value)], counts
        dropped = []
        if len(self.early) >= self.max_pending:
            dropped.append(self._pop_oldest_early())
            counts["unmatched"] += 1
        held = HeldFeedback(event_id, label, received.offset, now_ms, received.key,
                            received.value)
        self._set(EARLY, event_id, self.early, held)
        self._early_order.append(held)
        counts["early"] += 1
        self.totals.update(counts)
        return None, dropped, counts

    def expire(self, now_ms: int) -> tuple[list[HeldFeedback], Counter[Outcome]]:
        """Drop what is too old at ``now_ms``: (feedback now unmatched, counts)."""
        counts: Counter[Outcome] = Counter()
        order = self._entry_order
        while order and now_ms - order[0].event_ms > self.ttl_ms:
            if self.entries.get(order[0].event_id) is order[0]:
                self._set(PENDING, order[0].event_id, self.entries, None)
                counts["expired"] += 1
            order.popleft()
        learned = self._learned_order
        while learned and now_ms - learned[0][1] > self.ttl_ms:
            event_id, at = learned.popleft()
            if self.learned.get(event_id) == at:
                self._set(LEARNED, event_id, self.learned, None)
        unmatched = []
        early = self._early_order
        while early and now_ms - early[0].held_ms > self.grace_ms:
            held = early.popleft()
            if self.early.get(held.event_id) is held:
                self._set(EARLY, held.event_id, self.early, None)
                unmatched.append(held)
                counts["unmatched"] += 1
        self.totals.update(counts)
        return unmatched, counts

    # -- checkpoints -----------------------------------------------------------------------
    def changes_since_last_checkpoint(self) -> Delta:
        """The net changes since the previous call (or the restore), and forget them.

        O(fields changed), not O(size): what a checkpoint writes incrementally.
        """
        added: dict[Field, Any] = {}
        removed: list[Field] = []
        before: dict[Field, Any] = {}
        for key, base in self._dirty.items():
            now = self.get(key)
            base = None if base is _ABSENT else base
            if now is None and base is None:
                continue
            before[key] = base
            if now is None:
                removed.append(key)
            else:
                added[key] = now
        self._dirty = {}
        return Delta(added, removed, before)

    def get(self, key: Field) -> PendingEntry | HeldFeedback | int | None:
        """The value of one checkpoint field, or None."""
        kind, event_id = key
        table: dict[str, Any] = {PENDING: self.entries, EARLY: self.early,
                                 LEARNED: self.learned}[kind]
        return table.get(event_id)  # type: ignore[no-any-return]

    def fields(self) -> Iterator[tuple[Field, PendingEntry | HeldFeedback | int]]:
        """Every checkpoint field and value (a full write), oldest first per kind."""
        for event_id, entry in self.entries.items():
            yield (PENDING, event_id), entry
        for event_id, held in self.early.items():
            yield (EARLY, event_id), held
        for event_id, at in self.learned.items():
            yield (LEARNED, event_id), at

    def load(self, values: dict[Field, PendingEntry | HeldFeedback | int]) -> None:
        """Adopt restored fields (a verified checkpoint) into this empty store; the
        change log starts empty (what was restored is what is stored)."""
        if self.entries or self.early or self.learned:
            raise ValueError("load into a store that is not empty")
        items = sorted(values.items(), key=_age)
        for (kind, event_id), value in items:
            if kind == PENDING and isinstance(value, PendingEntry):
                self.entries[event_id] = value
                self._entry_order.append(value)
            elif kind == EARLY and isinstance(value, HeldFeedback):
                self.early[event_id] = value
                self._early_order.append(value)
            elif kind == LEARNED and isinstance(value, int):
                self.learned[event_id] = value
                self._learned_order.append((event_id, value))
            else:
                raise ValueError(f"checkpoint field {kind}:{event_id} holds a {type(value)}")
        self._dirty = {}

    # -- helpers ---------------------------------------------------------------------------
    def _set(self, kind: str, event_id: str, table: dict[str, Any], value: Any) -> None:
        key = (kind, event_id)
        if key not in self._dirty:
            self._dirty[key] = table.get(event_id, _ABSENT)
        if value is None:
            del table[event_id]
        else:
            table[event_id] = value

    def _shared(self, names: tuple[Any, ...]) -> tuple[Any, ...]:
        """One tuple object per distinct feature-name (or class) tuple."""
        if len(self._names) >= 10_000:
            return names
        return self._names.setdefault(names, names)

    def _remember(self, event_id: str, now_ms: int) -> None:
        if event_id not in self.learned and len(self.learned) >= self.max_pending:
            while self._learned_order:
                old, at = self._learned_order.popleft()
                if self.learned.get(old) == at:
                    self._set(LEARNED, old, self.learned, None)
                    break
        self._set(LEARNED, event_id, self.learned, now_ms)
        self._learned_order.append((event_id, now_ms))

    def _pop_oldest_entry(self) -> None:
        while True:
            entry = self._entry_order.popleft()
            if self.entries.get(entry.event_id) is entry:
                self._set(PENDING, entry.event_id, self.entries, None)
                return

    def _pop_oldest_early(self) -> HeldFeedback:
        while True:
            held = self._early_order.popleft()
            if self.early.get(held.event_id) is held:
                self._set(EARLY, held.event_id, self.early, None)
                return held


def _age(item: tuple[Field, Any]) -> tuple[int, int]:
    value = item[1]
    if isinstance(value, PendingEntry):
        return value.event_ms, value.offset
    if isinstance(value, HeldFeedback):
        return value.held_ms, value.offset
    return value, 0


class PartitionFeedback:
    """The feedback state of one partition: its clock and a store per model.

    ``new_store`` makes the store of a model on first use (see
    :meth:`PendingPredictions.for_spec`). Call :meth:`advance` for every record of
    the partition (events and feedback, valid or not), or let :meth:`scored` and
    :meth:`feedback` do it.
    """

    def __init__(self, new_store: Callable[[str], PendingPredictions]) -> None:
        self.new_store = new_store
        self.stores: dict[str, PendingPredictions] = {}
        self.watermark = -1

    def store(self, model: str) -> PendingPredictions:
        """The store of ``model`` (created empty on first use)."""
        store = self.stores.get(model)
        if store is None:
            store = self.stores[model] = self.new_store(model)
        return store

    def advance(self, record_ms: int | None) -> FeedbackResult:
        """Move the clock to ``record_ms`` (if later) and expire what it makes too old."""
        result = FeedbackResult()
        if record_ms is None or record_ms <= self.watermark:
            return result
        self.watermark = record_ms
        for model, store in self.stores.items():
            unmatched, counts = store.expire(record_ms)
            result.unmatched += [(model, held) for held in unmatched]
            result.counts.update(counts)
            result.by_model.update({(model, k): n for k, n in counts.items()})
        return result

    def scored(self, model: str, event_id: str, offset: int, features: dict[str, Any],
               scored: Scored, record_ms: int | None) -> FeedbackResult:
        """An unlabelled event of ``model`` was scored: keep it (or join held feedback)."""
        result = self.advance(record_ms)
        entry, held, counts = self.store(model).add(event_id, offset, features, scored,
                                                    self.watermark)
        result.counts.update(counts)
        result.by_model.update({(model, k): n for k, n in counts.items()})
        if entry is not None and held is not None:
            result.joins.append(Join(model, entry, held.label, held.offset, held.key,
                                     held.value))
        return result

    def feedback(self, model: str, event_id: str, label: Any,
                 received: Received) -> FeedbackResult:
        """A valid feedback for ``model`` (label already checked against the model)."""
        result = self.advance(received.timestamp_ms)
        entry, dropped, counts = self.store(model).match(event_id, label, received,
                                                         self.watermark)
        result.counts.update(counts)
        result.by_model.update({(model, k): n for k, n in counts.items()})
        result.unmatched += [(model, held) for held in dropped]
        if entry is not None:
            result.joins.append(Join(model, entry, label, received.offset, received.key,
                                     received.value))
        return result


@dataclass(frozen=True, slots=True)
class DelayedStep:
    """What learning a late label did: whether the model learned, and ADWIN's signal."""

    learned: bool
    signal: DriftSignal | None
    reset: bool


def learn_delayed(learner: Any, features: dict[str, Any], scored: Scored,
                  label: Any) -> DelayedStep:
    """Learn ``label`` for ``features`` as they were scored, judged by the stored prediction.

    Prequential evaluation with delay, as River's ``evaluate.progressive_val_score``
    with ``delay``: the metric is updated with the prediction made when the event was
    scored (skipped when there was none, as River does), then the model learns the
    features as they were then. ADWIN watches the stored prediction's loss (0/1 for
    classifiers, absolute error for regressors). Anomaly models learned when they
    scored: only their metric takes the label. ``learner`` is a
    :class:`learners.learner.Learner`; this is its :meth:`~learners.learner.Learner.learn_late`
    (same checks, transaction and drift handling as inline labels). Raises what that
    raises (``EventRefused``, ``ModelError``).
    """
    step = learner.learn_late(features, label, *scored)
    return DelayedStep(step.learned, step.signal, step.reset)
