"""Incremental, signed checkpoints of late-label state: a restore from the hash the
deltas built continues exactly like a run that never stopped; anything else is refused."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learners.checkpoint import Where
from learners.exceptions import CheckpointError
from learners.feedback import PartitionFeedback, PendingPredictions, Received
from learners.feedback_codec import FeedbackCodec, PendingSummary, apply, undo_write
from tests.learners.test_feedback_properties import schedules

WHERE = Where("g", "t.events", 2, "m")
KEY = b"k" * 32


def new_part(ttl=50, grace=20, max_pending=3):
    return PartitionFeedback(lambda model: PendingPredictions(ttl, grace, max_pending))


def step(part, op, offset):
    kind, event_id, at = op
    if kind == "event":
        got = part.scored("m", event_id, offset, {"x": float(offset), "k": "s", "b": True},
                          (True, {True: 0.25, False: 0.75}), at)
    else:
        got = part.feedback("m", event_id, offset % 2 == 0,
                            Received(offset, b"key", b'{"raw": 1}', at))
    return ([(j.entry, j.label, j.feedback_offset) for j in got.joins],
            sorted(got.counts.items()), [(m, h) for m, h in got.unmatched])


class Checkpointed:
    """The hash a worker's successive checkpoints build, as Redis would hold it."""

    def __init__(self):
        self.codec = FeedbackCodec(KEY, WHERE)
        self.hash: dict[bytes, bytes] = {}
        self.versions = [(PendingSummary.empty(), {})]  # (summary, undo of its write)

    def write(self, part):
        store = part.store("m")
        sealed = self.codec.seal_delta(store.changes_since_last_checkpoint(),
                                       self.versions[-1][0], part.watermark, store.totals)
        apply(self.hash, sealed.hset, sealed.hdel)
        self.versions.append((sealed.summary, sealed.undo))

    def restore(self, version=-1):
        stored = dict(self.hash)
        for _, undo in reversed(self.versions[version:][1:] if version != -1 else []):
            apply(stored, *undo_write(undo))
        summary = self.versions[version][0]
        part = new_part()
        self.codec.restore(stored, summary, part.store("m"))
        part.watermark = summary.watermark
        return part


@settings(max_examples=150, deadline=None)
@given(schedules(), st.data())
def test_a_restore_continues_exactly_like_a_run_that_never_stopped(schedule, data):
    cuts = sorted(data.draw(st.sets(st.integers(0, len(schedule)), max_size=5)))
    reference, outputs = new_part(), []
    for offset, op in enumerate(schedule):
        outputs.append(step(reference, op, offset))
    crash = data.draw(st.sampled_from([0, *cuts]))
    live, ckpt, taken = new_part(), Checkpointed(), [0]
    for offset, op in enumerate(schedule):
        if offset in cuts:
            ckpt.write(live)
            taken.append(offset)
        if offset >= crash:
            break
        step(live, op, offset)
    else:
        if len(schedule) in cuts:
            ckpt.write(live)
            taken.append(len(schedule))
    # Restore the newest checkpoint at or before the crash, or an older one (a fallback
    # after the newest failed to verify), and replay from its offset.
    index = data.draw(st.integers(0, len(taken) - 1))
    resumed = ckpt.restore(index - len(taken) if index < len(taken) - 1 else -1)
    start = taken[index]
    replay = [step(resumed, op, offset) for offset, op in enumerate(schedule) if offset >= start]
    assert replay == outputs[start:]
    assert resumed.store("m").entries == reference.store("m").entries
    assert resumed.store("m").learned == reference.store("m").learned
    assert resumed.store("m").totals == reference.store("m").totals


def filled(n=5):
    part = new_part(max_pending=100)
    for i in range(n):
        step(part, ("event", f"e{i}", i), i)
    step(part, ("feedback", "e0", 10), 10)
    step(part, ("feedback", "early", 11), 11)
    return part


def test_every_kind_round_trips_exactly_with_types_kept():
    part = filled()
    store = part.store("m")
    ckpt = Checkpointed()
    ckpt.write(part)
    back = ckpt.restore().store("m")
    assert back.entries == store.entries and back.early == store.early
    assert back.learned == store.learned
    entry = back.entries["e1"]
    assert [type(v) for v in entry.values] == [float, str, bool]
    assert entry.scored == (True, {True: 0.25, False: 0.75})
    assert back.early["early"].key == b"key" and back.early["early"].value == b'{"raw": 1}'


def test_numpy_predictions_are_stored_as_floats():
    store = PendingPredictions(100, 10, 10)
    store.add("a", 0, {"x": 1.0}, (np.float64(0.125), None), 0)
    codec = FeedbackCodec(KEY, WHERE)
    sealed = codec.seal_delta(store.changes_since_last_checkpoint(), PendingSummary.empty())
    back = PendingPredictions(100, 10, 10)
    codec.restore(sealed.hset, sealed.summary, back)
    assert back.entries["a"].scored == (0.125, None)


def test_a_full_write_has_the_summary_of_the_deltas():
    part = filled()
    ckpt = Checkpointed()
    ckpt.write(part)
    full = ckpt.codec.seal_all(part.store("m").fields(), part.watermark, part.store("m").totals)
    assert full.hset == ckpt.hash and full.summary == ckpt.versions[-1][0]


@pytest.mark.parametrize("tamper", ["drop", "replay", "foreign", "garbage", "moved"])
def test_a_hash_that_is_not_the_checkpoints_is_refused(tamper):
    part = filled()
    ckpt = Checkpointed()
    ckpt.write(part)
    assert b"p:e0" not in ckpt.hash and b"l:e0" in ckpt.hash  # e0 already learned
    step(part, ("feedback", "e1", 12), 12)  # e1 learned: its pending field is deleted
    removed = ckpt.hash[b"p:e1"]
    ckpt.write(part)
    assert b"p:e1" not in ckpt.hash
    if tamper == "drop":
        del ckpt.hash[b"p:e2"]
        match = "do not match"
    elif tamper == "replay":  # a validly signed, older field put back
        ckpt.hash[b"p:e1"] = removed
        match = "do not match"
    elif tamper == "foreign":
        other = FeedbackCodec(KEY, Where("g", "t.events", 3, "m"))
        ckpt.hash[b"p:e2"] = other.seal(("p", "e2"), part.store("m").entries["e2"])
        match = "does not verify"
    elif tamper == "garbage":
        ckpt.hash[b"p:e2"] = b"x"
        match = "does not verify"
    else:
        ckpt.hash[b"p:e9"] = ckpt.hash.pop(b"p:e2")
        match = "does not verify"
    target = new_part().store("m")
    with pytest.raises(CheckpointError, match=match):
        ckpt.codec.restore(ckpt.hash, ckpt.versions[-1][0], target)
    assert target.entries == {} and target.learned == {}
