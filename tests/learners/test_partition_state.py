"""The partition state under random interleavings of everything a worker lives through.

A model of one worker owning up to two partitions of a log of labelled events,
with a Redis of checkpoint versions (newer-only writes, a newest version that can
turn out corrupt) and the group's committed offsets. Hypothesis drives batches,
deliveries and delivery failures, snapshots, checkpoint writes that succeed, fail
or complete late (after a revocation or re-assignment), commits, revocations and
re-assignments; the invariants are checked after every step, and every restore
checks that replaying from the durable offset re-learns exactly the events after it.
"""

import pickle

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from learners.partition_state import Partitions, PartitionState, Phase, StateError

MODELS = ("a", "b")
PARTITIONS = (0, 1)


class CountingLearner:
    """Stands in for a River learner: remembers the offsets it learned, in order."""

    def __init__(self, learned: tuple[int, ...] = (), feedback: tuple[int, ...] = ()) -> None:
        self.offsets = list(learned)
        self.feedback = list(feedback)  # feedback-topic offsets learned (late labels)

    @property
    def n_learned(self) -> int:
        return len(self.offsets)


class Registry:
    names = MODELS

    def new_learner(self, name: str) -> CountingLearner:
        return CountingLearner()


def dump(name: str, learner: CountingLearner, offset: int) -> bytes:
    return pickle.dumps((offset, tuple(learner.offsets), -1, ()))


def dumper(state: PartitionState):
    """A blob also carrying the feedback offset the model reflects (its checkpoint header)."""
    return lambda name, learner, offset: pickle.dumps(
        (offset, tuple(learner.offsets), state.feedback_offset(name), tuple(learner.feedback)))


class Worker(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.parts = Partitions(Registry(), checkpoints=True)
        self.redis: dict[tuple[int, str], list[tuple[int, bytes, bool]]] = {}  # newest first
        self.group_committed = {p: -1 for p in PARTITIONS}
        self.position: dict[int, int] = {}
        # the feedback topic-partition of each partition: committed offset, position, and
        # where each model's current learner started learning feedback
        self.fb_committed = {p: -1 for p in PARTITIONS}
        self.fb_position: dict[int, int] = {}
        self.fb_start: dict[tuple[int, str], int] = {}
        self.in_flight: list = []  # snapshots handed to the writer
        self.held: list = []  # snapshots ahead of delivery, not written until it covers them
        self.last_snapshot: dict = {}  # partition -> its newest snapshot
        # (partition, model) -> first offset its current learner learned: 0, or where the
        # partition resumed for a model none of whose versions verified (started afresh)
        self.start: dict[tuple[int, str], int] = {}

    # -- helpers ------------------------------------------------------------------------
    def state(self, p: int) -> PartitionState | None:
        return self.parts.active(p)

    def stored_offset(self, p: int, model: str) -> int:
        versions = self.redis.get((p, model), [])
        return versions[0][0] if versions else -1

    def stored_pair(self, p: int, model: str) -> tuple[int, int]:
        """(events offset, feedback offset) of the newest stored version."""
        versions = self.redis.get((p, model), [])
        return pickle.loads(versions[0][1])[::2][:2] if versions else (-1, -1)

    # -- rules ----------------------------------------------------------------------------
    @initialize()
    def assign_both(self) -> None:
        for p in PARTITIONS:
            self.assign(p)

    @rule(p=st.sampled_from(PARTITIONS))
    def assign(self, p: int) -> None:
        old = self.parts.get(p)
        state = self.parts.assign(p)
        if old is not None:
            assert old.phase is Phase.REVOKED and old.learners == {}
        restored, fb_offsets = {}, {}
        for model in MODELS:
            for offset, blob, valid in self.redis.get((p, model), []):
                if valid:
                    at, learned, fb_at, fb_learned = pickle.loads(blob)
                    assert at == offset
                    restored[model] = (offset, CountingLearner(learned, fb_learned))
                    fb_offsets[model] = fb_at
                    break
        state.restore(restored, feedback=fb_offsets)
        assert state.fb.durable == state.fb.delivered == state.fb.processed
        assert state.fb.processed == min(fb_offsets.values(), default=-1)
        # What was restored is durable (and delivered): the group may commit up to it.
        assert state.durable == state.delivered == state.processed == state.offset
        assert state.committable() == (state.offset if state.offset >= 0 else None)
        # The consumer seeks past the restored offset, else resumes from the group's.
        self.position[p] = state.offset + 1 if restored else self.group_committed[p] + 1
        self.fb_position[p] = state.fb.processed + 1 if restored else self.fb_committed[p] + 1
        for model in MODELS:
            if model in restored:
                offset, learner = restored[model]
                assert learner.offsets == list(range(self.start[p, model], offset + 1)), (
                    "a checkpoint lost or repeated an event")
                assert learner.feedback == list(range(self.fb_start[p, model],
                                                      fb_offsets[model] + 1)), (
                    "a checkpoint lost or repeated a feedback record")
            else:
                self.start[p, model] = self.position[p]
                self.fb_start[p, model] = self.fb_position[p]

    @rule(p=st.sampled_from(PARTITIONS), n=st.integers(1, 5), delivered=st.booleans())
    def process_feedback(self, p: int, n: int, delivered: bool) -> None:
        """``n`` records of the partition's feedback topic-partition."""
        state = self.state(p)
        if state is None:
            return
        for offset in range(self.fb_position[p], self.fb_position[p] + n):
            if offset <= state.fb.processed:
                continue
            for model in MODELS:
                if not state.feedback_seen(model, offset):
                    state.learner(model).feedback.append(offset)
            state.advance_feedback(offset)
        self.fb_position[p] += n
        if delivered:
            state.deliver_feedback(state.fb.processed)

    @rule(p=st.sampled_from(PARTITIONS), n=st.integers(1, 5), delivered=st.booleans())
    def process(self, p: int, n: int, delivered: bool) -> None:
        """A batch of ``n`` events; with ``delivered``, its outputs are acknowledged."""
        state = self.state(p)
        if state is None:
            return
        for offset in range(self.position[p], self.position[p] + n):
            if state.seen(offset):
                continue
            for model in MODELS:
                if not state.model_seen(model, offset):
                    state.learner(model).offsets.append(offset)
            state.advance(offset)
        self.position[p] += n
        if delivered:
            state.deliver(state.processed)

    @rule(p=st.sampled_from(PARTITIONS), data=st.data(), whole=st.booleans())
    def deliver(self, p: int, data: st.DataObject, whole: bool) -> None:
        state = self.state(p)
        if state is None:
            return
        if state.processed >= 0:
            state.deliver(state.processed if whole else data.draw(
                st.integers(state.delivered, state.processed)))
        if state.fb.processed >= 0:
            state.deliver_feedback(state.fb.processed if whole else data.draw(
                st.integers(state.fb.delivered, state.fb.processed)))

    @rule(p=st.sampled_from(PARTITIONS))
    def delivery_fails(self, p: int) -> None:
        state = self.state(p)
        if state is not None:
            self.parts.fail(p)
            assert state.learners == {} and self.parts.get(p) is None
            self.assert_left_nothing(state)
            self.position.pop(p)
            self.fb_position.pop(p)

    def assert_left_nothing(self, state: PartitionState) -> None:
        """A failed or revoked state takes no learner, no write, no commit any more."""
        assert state.learners == {} and state.floors == {} and not state.active
        assert state.committable() is None and state.committable_feedback() is None
        snap = self.last_snapshot.get(state.partition)
        if snap is not None:
            durable = state.durable
            assert state.written(snap) is False and state.durable == durable
        for transition in (lambda: state.advance(state.processed + 1),
                           lambda: state.deliver(state.processed),
                           lambda: state.commit(state.committed)):
            with pytest.raises(StateError):
                transition()

    @rule(p=st.sampled_from(PARTITIONS), every=st.integers(1, 4))
    def snapshot(self, p: int, every: int) -> None:
        state = self.state(p)
        if state is None:
            return
        if not state.due(now=0.0, every=every, interval=1e9):
            return
        snap = state.snapshot(dumper(state), now=0.0)
        # Ahead of delivery (the next slice processed while the last one's outputs await
        # the broker), it is held until delivery covers it (streams.commits.Committer).
        (self.in_flight if state.covers(snap) else self.held).append(snap)
        self.last_snapshot[p] = snap

    @precondition(lambda self: self.held)
    @rule()
    def release_held(self) -> None:
        """Held snapshots that delivery now covers go to the writer; those of partitions
        that failed or moved away are never written."""
        for snap in list(self.held):
            state = self.parts.get(snap.partition)
            current = state is not None and state.generation == snap.generation and state.active
            if not current:
                self.held.remove(snap)
            elif state.covers(snap):
                self.held.remove(snap)
                self.in_flight.append(snap)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def writing_a_held_snapshot_is_refused(self, data: st.DataObject) -> None:
        snap = self.held[data.draw(st.integers(0, len(self.held) - 1))]
        state = self.parts.get(snap.partition)
        if state is None or state.generation != snap.generation or not state.active:
            return
        if state.covers(snap):
            return
        durable = (state.durable, state.fb.durable)
        with pytest.raises(StateError, match="beyond delivered"):
            self.parts.written(snap)
        assert (state.durable, state.fb.durable) == durable

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), ok=st.booleans())
    def write_completes(self, data: st.DataObject, ok: bool) -> None:
        snap = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        if not ok:
            return  # Redis refused it: nothing stored, nothing durable
        for model, (offset, blob) in snap.blobs.items():  # the Lua script: newer only
            fb_offset = pickle.loads(blob)[2]
            if (offset, fb_offset) > self.stored_pair(snap.partition, model):
                self.redis.setdefault((snap.partition, model), []).insert(0, (offset, blob, True))
        state = self.parts.get(snap.partition)
        before = None if state is None else state.durable
        accepted = self.parts.written(snap)
        current = state is not None and state.generation == snap.generation and state.active
        assert accepted == current
        if not current and state is not None:
            assert state.durable == before, "a late write of another generation moved durable"

    @rule(p=st.sampled_from(PARTITIONS), model=st.sampled_from(MODELS))
    def newest_version_turns_out_corrupt(self, p: int, model: str) -> None:
        versions = self.redis.get((p, model))
        if versions:
            offset, blob, _ = versions[0]
            versions[0] = (offset, blob, False)

    @rule(p=st.sampled_from(PARTITIONS))
    def commit(self, p: int) -> None:
        state = self.state(p)
        if state is None:
            return
        upto = state.committable()
        if upto is not None:
            self.group_committed[p] = max(self.group_committed[p], upto)
            state.commit(upto)
        upto = state.committable_feedback()
        if upto is not None:
            self.fb_committed[p] = max(self.fb_committed[p], upto)
            state.commit_feedback(upto)

    @rule(p=st.sampled_from(PARTITIONS))
    def commit_past_durable_is_refused(self, p: int) -> None:
        state = self.state(p)
        if state is None:
            return
        with pytest.raises(StateError):
            state.commit(min(state.durable, state.delivered) + 1)
        with pytest.raises(StateError):
            state.commit_feedback(min(state.fb.durable, state.fb.delivered) + 1)

    @rule(p=st.sampled_from(PARTITIONS))
    def delivery_past_processed_is_refused(self, p: int) -> None:
        state = self.state(p)
        if state is None:
            return
        with pytest.raises(StateError):
            state.deliver(state.processed + 1)
        with pytest.raises(StateError):
            state.deliver_feedback(state.fb.processed + 1)

    @rule(p=st.sampled_from(PARTITIONS))
    def replayed_offset_is_refused(self, p: int) -> None:
        state = self.state(p)
        if state is None or state.processed < 0:
            return
        with pytest.raises(StateError):
            state.advance(state.processed)

    @rule(p=st.sampled_from(PARTITIONS))
    def revoke(self, p: int) -> None:
        state = self.parts.get(p)
        if state is not None and state.in_step and state.processed > state.durable:
            # a write in flight when the partition moves away
            self.last_snapshot[p] = state.snapshot(dumper(state), now=0.0)
        gone = self.parts.revoke(p)
        assert self.parts.get(p) is None
        if state is not None:
            assert gone is state
        self.assert_left_nothing(gone)
        self.position.pop(p, None)
        self.fb_position.pop(p, None)

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def offsets_are_ordered(self) -> None:
        for p, state in self.parts.items():
            if state.active:
                assert state.committed <= state.durable <= state.delivered <= state.processed, (
                    p, state.committed, state.durable, state.delivered, state.processed)
                assert state.snapshotted <= state.processed
                fb = state.fb
                assert fb.committed <= fb.durable <= fb.delivered <= fb.processed, (p, fb)
                assert fb.snapshotted <= fb.processed

    @invariant()
    def committed_offsets_never_pass_a_written_checkpoint(self) -> None:
        for p in PARTITIONS:
            stored = [o for m in MODELS for o, _, _ in self.redis.get((p, m), [])[:1]]
            assert self.group_committed[p] <= min(stored, default=-1)
            fb_stored = [pickle.loads(b)[2] for m in MODELS
                         for _, b, _ in self.redis.get((p, m), [])[:1]]
            assert self.fb_committed[p] <= min(fb_stored, default=-1), (
                "the feedback topic's committed offset passed a written checkpoint")

    @invariant()
    def each_event_is_learned_exactly_once_in_order(self) -> None:
        for p, state in self.parts.items():
            for model, learner in state.learners.items():
                assert learner.offsets == list(range(self.start[p, model], state.processed + 1))
                assert learner.feedback == list(range(self.fb_start[p, model],
                                                      state.fb.processed + 1))

    @invariant()
    def checkpoints_cover_exactly_their_offset(self) -> None:
        for (_, _), versions in self.redis.items():
            for offset, blob, _ in versions:
                at, learned, fb_at, fb_learned = pickle.loads(blob)
                assert not fb_learned or fb_learned[-1] == fb_at
                assert at == offset and learned and learned[-1] == offset
                assert list(learned) == list(range(learned[0], offset + 1))


TestPartitionState = Worker.TestCase
TestPartitionState.settings = settings(max_examples=500, stateful_step_count=40, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])


def test_a_fresh_partition_commits_nothing_until_a_checkpoint_is_written():
    parts = Partitions(Registry(), checkpoints=True)
    state = parts.assign(3)
    state.restore({})
    for offset in range(3):
        state.advance(offset)
    state.deliver(2)
    assert state.committable() is None
    snap = state.snapshot(dump, now=0.0)
    parts.revoke(3)
    again = parts.assign(3)
    again.restore({})
    assert parts.written(snap) is False and again.durable == -1  # a late write is ignored


def test_without_checkpoints_delivered_events_are_committable():
    parts = Partitions(Registry(), checkpoints=False)
    state = parts.assign(0)
    state.restore({})
    state.advance(0)
    state.advance(1)
    assert state.committable() is None
    state.deliver(1)
    assert state.committable() == 1
    with pytest.raises(StateError):
        state.snapshot(dump, now=0.0)
