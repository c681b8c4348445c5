"""Everything this worker knows about one assigned partition, and the rules that keep it honest.

A :class:`PartitionState` owns the partition's learners and five offsets (each the
last offset covered, ``-1`` for none)::

    processed   events applied to the learners (scored, learned, dead-lettered, skipped)
    delivered   events whose outputs the broker acknowledged
    snapshotted events covered by the newest snapshot taken of the learners
    durable     events covered by a checkpoint Redis has written
    committed   events covered by the consumer group's committed offset

The transitions are methods and every one of them keeps, or refuses with
:class:`StateError`::

    committed <= durable <= delivered <= processed      (durable: with checkpoints on)
    a snapshot may be taken ahead of delivery (processed > delivered: the loop processes
        the next slice while the last one's outputs await the broker), but it is written
        only once delivered covers it: ``written`` refuses a snapshot beyond delivered,
        so a checkpoint never reflects an event whose output may be lost
    a failed or revoked partition keeps nothing: no learners, and no transition but
        ``written`` (which it ignores, as it ignores writes of an earlier generation)

:class:`Partitions` holds the states of one worker and gives each assignment a new
generation, so a checkpoint write that completes after its partition moved away (or
was re-assigned) changes nothing. Pure: no Kafka, no Redis, no asyncio; the caller
passes the time in. The shape follows Quix Streams' ``Checkpoint`` (one object that
knows what is processed, what may be committed, and refuses the rest).

>>> from learners.registry import ModelRegistry
>>> from schemas.models_file import ModelsConfig
>>> parts = Partitions(ModelRegistry(ModelsConfig.default(), cooldown=100), checkpoints=True)
>>> p = parts.assign(0)
>>> p.restore({}); p.active
True
>>> p.advance(0); p.advance(1); p.deliver(1)
>>> snap = p.snapshot(lambda name, learner, offset: b"blob", now=0.0)
>>> snap.offset, p.snapshotted, p.committable()
(1, 1, None)
>>> parts.written(snap), p.durable, p.committable()
(True, 1, 1)
>>> p.commit(1); p.committed
1
>>> parts.revoke(0).learners, parts.get(0)
({}, None)
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from learners.feedback import PartitionFeedback, PendingPredictions
from learners.learner import Learner
from learners.registry import ModelRegistry

#: Serialises one learner at an offset: (model name, learner, offset) -> checkpoint blob.
Dump = Callable[[str, Learner, int], bytes]


class StateError(RuntimeError):
    """A transition that would break a partition-state invariant (a bug in the caller)."""


class Phase(Enum):
    """Where a partition's state is in its life on this worker."""

    RESTORING = "restoring"  # assigned, learners not yet restored: nothing may be processed
    ACTIVE = "active"
    FAILED = "failed"  # an output was not delivered: the learners are gone
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One partition's learners serialised at ``offset`` (each model at ``blobs[m][0]``)."""

    partition: int
    offset: int
    blobs: dict[str, tuple[int, bytes]]
    generation: int
    #: The feedback topic-partition's offset the snapshot covers (-1: none).
    feedback_offset: int = -1
    #: Per model, the pending-predictions write that goes with its blob (opaque here:
    #: sealed by the checkpoint writer, see ``streams/checkpointer.py``).
    pending: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TopicOffsets:
    """The five offsets of the feedback topic-partition (same meaning and rules as the
    events topic-partition's, which :class:`PartitionState` keeps as attributes)."""

    processed: int = -1
    delivered: int = -1
    snapshotted: int = -1
    durable: int = -1
    committed: int = -1


class PartitionState:
    """Learners and offsets of one partition for one assignment (``generation``)."""

    def __init__(self, partition: int, generation: int, registry: ModelRegistry,
                 checkpoints: bool, grace: float = 60.0) -> None:
        self.partition = partition
        self.generation = generation
        self.registry = registry
        self.checkpoints = checkpoints
        self.phase = Phase.RESTORING
        self.learners: dict[str, Learner] = {}
        self.floors: dict[str, int] = {}
        self.processed = self.delivered = self.snapshotted = self.durable = -1
        self.committed = -1
        self.snapped_learned = 0
        self.snapped_at = 0.0
        self.durable_at: float | None = None
        #: Late labels: the feedback topic-partition's offsets, each model's restored
        #: feedback offset, and the pending predictions / held feedback of every model.
        self.fb = TopicOffsets()
        self.fb_floors: dict[str, int] = {}
        self.feedback = PartitionFeedback(
            lambda name: PendingPredictions.for_spec(registry.config.models[name], grace))

    # -- reading ------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True when events of this partition may be processed."""
        return self.phase is Phase.ACTIVE

    @property
    def offset(self) -> int:
        """The last offset applied to the learners (= ``processed``)."""
        return self.processed

    def seen(self, offset: int) -> bool:
        """True when the state already reflects the event at ``offset``."""
        return offset <= self.processed

    def model_seen(self, name: str, offset: int) -> bool:
        """True when model ``name``'s restored state already reflects ``offset``.

        Models can be restored to different offsets (an older version is used when
        the newest fails to verify), so replayed events are judged per model.
        """
        return offset <= self.floors.get(name, -1)

    def learner(self, name: str) -> Learner:
        """The learner of model ``name`` on this partition (fresh if never seen)."""
        learner = self.learners.get(name)
        if learner is None:
            self._require(Phase.ACTIVE, "use a learner of")
            learner = self.learners[name] = self.registry.new_learner(name)
        return learner

    def learned(self) -> int:
        """Events learned by all this partition's learners together."""
        return sum(learner.n_learned for learner in self.learners.values())

    def feedback_seen(self, name: str, offset: int) -> bool:
        """True when model ``name``'s restored state already reflects the feedback record
        at ``offset`` (judged per model, as :meth:`model_seen`)."""
        return offset <= self.fb_floors.get(name, -1)

    @property
    def in_step(self) -> bool:
        """True when the learners reflect exactly the delivered events and feedback."""
        return (self.active and self.processed == self.delivered
                and self.fb.processed == self.fb.delivered)

    # -- transitions ----------------------------------------------------------------------
    def restore(self, restored: dict[str, tuple[int, Learner]], now: float = 0.0,
                wall: float = 0.0, feedback: dict[str, int] | None = None) -> None:
        """Adopt checkpointed learners (each reflecting events up to its offset) and start
        (``now``: monotonic seconds for scheduling; ``wall``: epoch seconds).

        The partition resumes after the lowest restored offset; that much is durable
        (it came from a written checkpoint) and delivered (its outputs were out before
        the checkpoint was taken). ``feedback`` gives each restored model's feedback
        offset (absent: -1); the feedback topic-partition resumes after the lowest.
        """
        self._require(Phase.RESTORING, "restore")
        self.fb_floors = {name: (feedback or {}).get(name, -1) for name in restored}
        fb_start = min(self.fb_floors.values(), default=-1)
        self.fb = TopicOffsets(fb_start, fb_start, fb_start,
                               fb_start if self.checkpoints else -1, -1)
        self.learners = {name: learner for name, (_, learner) in restored.items()}
        self.floors = {name: offset for name, (offset, _) in restored.items()}
        start = min(self.floors.values(), default=-1)
        self.processed = self.delivered = self.snapshotted = start
        if self.checkpoints:
            self.durable = start
            self.durable_at = wall if start >= 0 else None
        self.snapped_learned = self.learned()
        self.snapped_at = now
        self.phase = Phase.ACTIVE

    def advance(self, offset: int) -> None:
        """The event at ``offset`` has been applied to the learners."""
        if self.phase is not Phase.ACTIVE:
            self._require(Phase.ACTIVE, "process")
        if offset <= self.processed:
            raise StateError(f"partition {self.partition}: offset {offset} processed after "
                             f"{self.processed}; a partition's events go in order, once")
        self.processed = offset

    def advance_feedback(self, offset: int) -> None:
        """The feedback record at ``offset`` has been applied."""
        if self.phase is not Phase.ACTIVE:
            self._require(Phase.ACTIVE, "process")
        if offset <= self.fb.processed:
            raise StateError(f"partition {self.partition}: feedback offset {offset} processed "
                             f"after {self.fb.processed}; in order, once")
        self.fb.processed = offset

    def deliver_feedback(self, offset: int) -> None:
        """The outputs of every feedback record up to ``offset`` are acknowledged."""
        self._require(Phase.ACTIVE, "deliver")
        if offset > self.fb.processed:
            raise StateError(f"partition {self.partition}: feedback delivered {offset} beyond "
                             f"processed {self.fb.processed}")
        self.fb.delivered = max(self.fb.delivered, offset)

    def deliver(self, offset: int) -> None:
        """The outputs of every event up to ``offset`` are acknowledged by the broker."""
        self._require(Phase.ACTIVE, "deliver")
        if offset > self.processed:
            raise StateError(f"partition {self.partition}: delivered {offset} beyond processed "
                             f"{self.processed}")
        self.delivered = max(self.delivered, offset)

    def fail(self) -> None:
        """Outputs of processed events may be lost: drop the learners (they reflect them)."""
        self._drop(Phase.FAILED)

    def revoke(self) -> None:
        """The partition moved to another worker: keep nothing."""
        self._drop(Phase.REVOKED)

    def due(self, now: float, every: int, interval: float) -> bool:
        """Whether a snapshot is due: ``every`` events learned since the last one, or
        ``interval`` seconds passed; never when nothing new is processed."""
        if not self.checkpoints or not self.active:
            return False
        if self.processed <= self.snapshotted and self.fb.processed <= self.fb.snapshotted:
            return False
        return (self.learned() - self.snapped_learned >= every
                or now - self.snapped_at >= interval)

    def snapshot(self, dump: Dump, now: float) -> Snapshot:
        """Serialise every learner with ``dump`` at ``processed`` (which may be ahead of
        ``delivered``: the snapshot may then be written only once delivery covers it,
        :meth:`covers`)."""
        if not self.checkpoints:
            raise StateError("checkpoints are off")
        self._require(Phase.ACTIVE, "snapshot")
        blobs = {}
        for name, learner in self.learners.items():
            # A model restored from a newer version than the partition's floor reflects
            # events up to that version's offset, not just the floor.
            offset = max(self.processed, self.floors.get(name, -1))
            blobs[name] = (offset, dump(name, learner, offset))
        self.snapshotted = self.processed
        self.fb.snapshotted = self.fb.processed
        self.snapped_learned = self.learned()
        self.snapped_at = now
        return Snapshot(self.partition, self.processed, blobs, self.generation,
                        self.fb.processed)

    def covers(self, snap: Snapshot) -> bool:
        """True when every event and feedback record ``snap`` reflects is delivered (it may
        be written: :meth:`written` accepts it)."""
        return snap.offset <= self.delivered and snap.feedback_offset <= self.fb.delivered

    def feedback_offset(self, name: str) -> int:
        """The feedback offset model ``name``'s state reflects (for its checkpoint)."""
        return max(self.fb.processed, self.fb_floors.get(name, -1))

    def written(self, snap: Snapshot, now: float = 0.0) -> bool:
        """Redis has written ``snap``; False (and nothing changes) when it belongs to
        another generation or this state is no longer active."""
        if snap.generation != self.generation or not self.active:
            return False
        if snap.offset > self.delivered:
            raise StateError(f"partition {self.partition}: checkpoint at {snap.offset} beyond "
                             f"delivered {self.delivered}")
        if snap.feedback_offset > self.fb.delivered:
            raise StateError(f"partition {self.partition}: checkpoint at feedback offset "
                             f"{snap.feedback_offset} beyond delivered {self.fb.delivered}")
        if snap.offset > self.durable:
            self.durable = snap.offset
            self.durable_at = now
        self.fb.durable = max(self.fb.durable, snap.feedback_offset)
        return True

    def committable(self) -> int | None:
        """The last offset the group may commit beyond ``committed`` now, or None."""
        if not self.active:
            return None
        upto = min(self.delivered, self.durable) if self.checkpoints else self.delivered
        return upto if upto > self.committed else None

    def committable_feedback(self) -> int | None:
        """As :meth:`committable`, for the feedback topic-partition."""
        if not self.active:
            return None
        fb = self.fb
        upto = min(fb.delivered, fb.durable) if self.checkpoints else fb.delivered
        return upto if upto > fb.committed else None

    def commit_feedback(self, offset: int) -> None:
        """The group's committed feedback offset now covers records up to ``offset``."""
        self._require(Phase.ACTIVE, "commit")
        fb = self.fb
        limit = fb.durable if self.checkpoints else fb.delivered
        if offset > min(limit, fb.delivered):
            raise StateError(f"partition {self.partition}: feedback commit {offset} beyond "
                             f"delivered ({fb.delivered}) and durable ({fb.durable})")
        fb.committed = max(fb.committed, offset)

    def commit(self, offset: int) -> None:
        """The group's committed offset now covers events up to ``offset``."""
        self._require(Phase.ACTIVE, "commit")
        limit = self.durable if self.checkpoints else self.delivered
        if offset > min(limit, self.delivered):
            raise StateError(f"partition {self.partition}: commit {offset} beyond what is "
                             f"delivered ({self.delivered}) and durable ({self.durable})")
        self.committed = max(self.committed, offset)

    # -- helpers ------------------------------------------------------------------------
    def _require(self, phase: Phase, what: str) -> None:
        if self.phase is not phase:
            raise StateError(f"cannot {what} partition {self.partition}: it is "
                             f"{self.phase.value}")

    def _drop(self, phase: Phase) -> None:
        self.phase = phase
        self.learners = {}
        self.floors = {}
        self.fb_floors = {}
        self.feedback = PartitionFeedback(self.feedback.new_store)


class Partitions:
    """The :class:`PartitionState` of every partition this worker owns, by number."""

    def __init__(self, registry: ModelRegistry, checkpoints: bool, grace: float = 60.0) -> None:
        self.registry = registry
        self.checkpoints = checkpoints
        self.grace = grace
        self._states: dict[int, PartitionState] = {}
        self._generation = 0

    def assign(self, partition: int) -> PartitionState:
        """A new, restoring state for ``partition`` (replacing any previous one)."""
        old = self._states.get(partition)
        if old is not None:
            old.revoke()
        self._generation += 1
        state = self._states[partition] = PartitionState(
            partition, self._generation, self.registry, self.checkpoints, self.grace)
        return state

    def revoke(self, partition: int) -> PartitionState:
        """Forget ``partition`` (returns its emptied state; a no-op if unknown)."""
        state = self._states.pop(partition, None)
        if state is None:
            state = PartitionState(partition, -1, self.registry, self.checkpoints)
        state.revoke()
        return state

    def fail(self, partition: int) -> None:
        """Outputs of ``partition`` may be lost: drop its learners and forget it."""
        state = self._states.pop(partition, None)
        if state is not None:
            state.fail()

    def get(self, partition: int) -> PartitionState | None:
        """The state of ``partition``, or None if this worker does not own it."""
        return self._states.get(partition)

    def active(self, partition: int) -> PartitionState | None:
        """The state of ``partition`` if its events may be processed now."""
        state = self._states.get(partition)
        return state if state is not None and state.active else None

    def written(self, snap: Snapshot, now: float = 0.0) -> bool:
        """Record a completed checkpoint write; False when its partition moved on."""
        state = self._states.get(snap.partition)
        return state is not None and state.written(snap, now)

    def items(self) -> Iterator[tuple[int, PartitionState]]:
        """(partition, state) of every owned partition, by partition number."""
        return iter(sorted(self._states.items()))

    def __contains__(self, partition: object) -> bool:
        return partition in self._states

    def __len__(self) -> int:
        return len(self._states)
