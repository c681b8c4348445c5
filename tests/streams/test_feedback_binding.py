"""The feedback topic-partition in the checkpoint binding: its commit names the checkpoint
that covers it, and a restored checkpoint must cover the group's committed feedback offset."""

import asyncio

import orjson
import pytest

from learners.learner import Learner
from schemas.models_file import ModelsConfig
from streams import commit_metadata
from streams.checkpoint_store import Restored
from streams.commit_metadata import Identity, LogPosition, decode
from streams.exceptions import ServiceError
from streams.records import Record
from tests.streams.test_loop import assign, loop_record, make_loop, wait_until


def feedback_record(offset: int, event: int) -> Record:
    return Record("t.feedback", 0, offset, b"k", orjson.dumps(
        {"event_id": f"e0-{event}", "model": "default", "label": True}), None)


def test_the_feedback_commit_names_the_checkpoint_that_covers_it():
    async def go():
        loop, consumer, _sender, store, cp = make_loop()
        seen = []

        async def commit(offsets):
            seen.extend((tp.topic, meta.offset, meta.metadata) for tp, meta in offsets.items())
        consumer.commit = commit
        cp.start()
        await assign(loop, 0)
        await loop.handle([loop_record(0, 0), feedback_record(0, 0), feedback_record(1, 9)])
        state = loop.partitions.get(0)
        await wait_until(lambda: state.fb.durable == 1 and state.durable == 0)
        await loop.committer.commit()
        await cp.stop()
        return seen, store
    seen, store = asyncio.run(go())
    blob = store.saved[0]["default"][1]
    named = {"default": Identity(0, commit_metadata.digest(blob))}
    by_topic = {topic: (offset, decode(metadata)) for topic, offset, metadata in seen}
    assert by_topic == {"t.events": (1, named), "t.feedback": (2, named)}


def check(policy: str, committed: int | None, covered: dict[str, int], **why: set[str]):
    loop, _consumer, _sender, _store, cp = make_loop(checkpoint_unverifiable=policy)
    registry = loop.processor.registry
    found = Restored(**why)
    for name in ModelsConfig.default().models:
        found.learners[name] = (5, Learner.from_spec(registry.config.models[name], 100))
    loop.rebalancer._check_feedback_commit(0, found, covered,
                                           LogPosition(committed, None, start=0, end=50))
    return found, loop.rebalancer.metrics.render() + cp.metrics.render()


def test_a_checkpoint_covering_the_committed_feedback_offset_is_kept():
    found, _ = check("stop", committed=8, covered={"default": 7})  # committed: next to read
    assert list(found.learners) == ["default"]
    found, _ = check("stop", committed=None, covered={})
    assert list(found.learners) == ["default"]


def test_a_checkpoint_behind_the_committed_feedback_offset_is_unusable():
    with pytest.raises(ServiceError, match="feedback topic up to offset 6, but the group "
                                           "committed it up to 7"):
        check("stop", committed=8, covered={"default": 6})
    found, rendered = check("fresh", committed=8, covered={})
    assert found.learners == {}
    assert b'driftline_checkpoint_fresh_starts_total{model="default"} 1.0' in rendered
    assert b'driftline_checkpoints_rejected_total{reason="older"} 1.0' in rendered


@pytest.mark.parametrize("why", ["rolled_back", "fallback"])
def test_a_model_older_on_purpose_reads_its_labels_again(why):
    # `driftline checkpoints rollback` asked for it, or the newer versions were corrupt:
    # the model resumes, and the feedback topic is read from just after its checkpoint
    found, rendered = check("stop", committed=8, covered={"default": 3},
                            **{why: {"default"}})
    assert list(found.learners) == ["default"]
    assert b'driftline_checkpoints_rejected_total{reason="older"} 1.0' not in rendered
