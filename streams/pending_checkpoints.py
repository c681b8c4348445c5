"""Checkpointing late-label state: each model's pending-predictions hash in Redis.

A (partition, model)'s :class:`learners.feedback.PendingPredictions` is written with its
learner blob, incrementally: each snapshot seals the changes since the previous one
(:meth:`learners.feedback_codec.FeedbackCodec.seal_delta`, O(changes)); the first write
after an assignment without a restored hash, or after a refused write, is a full one
(``seal_all``, O(size)). The learner's header carries the hash's summary and the feedback
offset the checkpoint reflects; a restore verifies the hash against it. See "Late labels"
in ``docs/architecture.md``.

>>> from learners.checkpoint import Where
>>> from learners.feedback import PendingPredictions
>>> from schemas.settings import Settings
>>> hashes = PendingHashes(Settings(checkpoint_key="k" * 32), lambda p, m: Where("g", "t", p, m))
>>> store = PendingPredictions(ttl_ms=1000, grace_ms=100, max_pending=10)
>>> _ = store.add("e1", 5, {"x": 1.5}, (True, {True: 0.7, False: 0.3}), 40)
>>> write, header = hashes.seal(0, "m", store, watermark=40, feedback_offset=-1)
>>> write.full, sorted(write.hset), header["summary"]["count"]
(True, [b'p:e1'], 1)
>>> _ = store.add("e2", 6, {"x": 2.5}, (False, {True: 0.4, False: 0.6}), 41)
>>> write, _ = hashes.seal(0, "m", store, watermark=41, feedback_offset=-1)
>>> write.full, sorted(write.hset), write.base == header["summary"]["digest"]
(False, [b'p:e2'], True)
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from learners.checkpoint import Where
from learners.feedback import PartitionFeedback, PendingPredictions
from learners.feedback_codec import FeedbackCodec, PendingSummary
from learners.partition_state import Snapshot
from schemas.settings import Settings
from streams.checkpoint_store import PendingWrite, Restored

log = logging.getLogger(__name__)


class PendingHashes:
    """The pending-hash chain of every (partition, model) this worker writes.

    ``where`` names the (group, topic, partition, model) a field is signed for.
    """

    def __init__(self, settings: Settings, where: Callable[[int, str], Where]) -> None:
        self._settings = settings
        self._where = where
        #: The summary of each (partition, model)'s hash as the last snapshot left it
        #: (absent: the next write of that hash is a full one).
        self._summaries: dict[tuple[int, str], PendingSummary] = {}

    def codec(self, partition: int, model: str) -> FeedbackCodec:
        """The field signer of (partition, model)."""
        key = self._settings.checkpoint_key
        assert key is not None
        return FeedbackCodec(key.get_secret_value().encode(), self._where(partition, model))

    def seal(self, partition: int, model: str, store: PendingPredictions, watermark: int,
             feedback_offset: int) -> tuple[PendingWrite, dict[str, Any]]:
        """The write of ``store``'s changes since the previous seal (everything, the first
        time) and the ``feedback`` object of the learner's checkpoint header."""
        where = (partition, model)
        before = self._summaries.get(where)
        delta = store.changes_since_last_checkpoint()
        codec = self.codec(partition, model)
        if before is None:
            sealed = codec.seal_all(store.fields(), watermark, store.totals)
        else:
            sealed = codec.seal_delta(delta, before, watermark, store.totals)
        self._summaries[where] = sealed.summary
        base = "" if before is None else before.digest
        return (PendingWrite(feedback_offset, sealed.hset, sealed.hdel, before is None, base,
                             sealed.summary.digest),
                {"summary": asdict(sealed.summary), "offset": feedback_offset})

    def forget(self, partition: int, model: str | None = None) -> None:
        """The next write of (partition, model) — of every model of ``partition`` when
        ``model`` is None — is a full one (refused write, re-assignment, fresh start)."""
        for where in [w for w in self._summaries
                      if w[0] == partition and model in (None, w[1])]:
            del self._summaries[where]

    async def restore(self, partition: int, found: Restored, feedback: PartitionFeedback,
                      read: Callable[[int, str], Any],
                      refused: Callable[[str, str], None]) -> dict[str, int]:
        """Load the pending hash of each restored model into ``feedback``, verified against
        its checkpoint's summary (in a thread: a large store does not stall the loop);
        ``read(partition, model)`` reads a hash. Returns each model's feedback offset.

        The hash is the newest write's: a model restored from an older version (a newer one
        was refused as corrupt, or a rollback asked for it) cannot match it; such a model
        keeps its learner and starts with no pending predictions (a warning: labels of the
        predictions that were waiting then come out as ``unmatched_feedback``). Otherwise a
        hash that does not match is passed to ``refused(model, why)`` (which raises to stop
        the worker, or returns: the model's learner is then dropped from ``found``).
        """
        self.forget(partition)
        offsets: dict[str, int] = {}
        older = set(found.older) | {model for model, _, _ in found.refusals}
        for model in list(found.learners):
            info = found.feedback.get(model)
            if info is None:
                continue
            summary = PendingSummary(**info["summary"])
            store = feedback.new_store(model)
            stored = await read(partition, model)
            try:
                await asyncio.to_thread(self.codec(partition, model).restore, stored,
                                        summary, store)
            except Exception as exc:  # CheckpointError; anything else is as unusable
                if model not in older:
                    del found.learners[model]
                    refused(model, f"its pending predictions do not match the checkpoint: "
                                   f"{exc}")
                    continue
                log.warning("partition %s model %s: restored from an older checkpoint, whose "
                            "pending predictions are no longer stored (%s); it goes on without "
                            "them (their labels will be unmatched)", partition, model, exc,
                            extra={"partition": partition, "model": model})
                store = feedback.new_store(model)
                summary = PendingSummary.empty(summary.watermark)
            else:
                self._summaries[partition, model] = summary
            feedback.stores[model] = store
            feedback.watermark = max(feedback.watermark, summary.watermark)
            offsets[model] = int(info["offset"])
        return offsets


def combine(older: Snapshot, newer: Snapshot) -> Snapshot:
    """``newer`` with the pending writes of ``older`` (not written) folded in before its
    own, so replacing a waiting snapshot loses no change of a pending hash."""
    if older.generation != newer.generation:
        return newer
    pending = dict(newer.pending)
    for model, old in older.pending.items():
        new = pending.get(model)
        if new is None or new.full:  # a full write replaces the whole hash anyway
            continue
        dropped = set(new.hdel)
        hset = {k: v for k, v in old.hset.items() if k not in dropped}
        hset.update(new.hset)
        hdel = [k for k in old.hdel if k not in new.hset] + new.hdel
        pending[model] = PendingWrite(new.feedback_offset, hset, hdel, old.full or new.full,
                                      old.base, new.after)
    return replace(newer, pending=pending)
