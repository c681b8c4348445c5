"""Issue 16, kill -9 to first prediction: ``driftline worker --supervise`` (real broker and
redis-server). A killed worker child is replaced at once by a child forked from the
parent, which resumes from the checkpoint as the same static member: every event
predicted (repeats identical), every labelled event learned once, probes bit-identical to
River in-process. A start-up error (exit code 1) is not restarted; SIGTERM to the parent
stops both; the child does not outlive the parent."""

import os
import re
import signal
from pathlib import Path

import redis

from streams.commit_metadata import decode
from tests.helpers import wait_for
from tests.integration.test_checkpoint_binding import committed
from tests.integration.test_recovery import FAST_GROUP, send_stream
from tests.kafka_tools import count, create_topic
from tests.recovery import assert_effectively_once, send_probes, wait_for_probes

SUPERVISED = {**FAST_GROUP, "DRIFTLINE_SUPERVISE": "true", "DRIFTLINE_INSTANCE_ID": "worker-0"}


def child_of(worker, other_than: int | None = None) -> int:
    """The supervised worker's one child (a new one, when ``other_than`` is given)."""
    found = wait_for(lambda: [pid for pid in worker.children() if pid != other_than], 60,
                     "the worker child")
    (pid,) = found
    return pid


def gone(pid: int) -> bool:
    """The process has ended (reaped, or a zombie nobody reaps)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
    except OSError:
        return True


def test_a_killed_child_is_replaced_and_every_event_is_learned_once(kafka, topic_prefix,
                                                                    start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=2)
    events = send_stream(kafka.bootstrap, topic, 20_000, seed=31)
    predictions_topic = f"{topic_prefix}predictions"
    worker = start_worker(**SUPERVISED)
    child = child_of(worker)
    restarts = []
    for point in (4_000, 12_000):  # the second death is a quick one: after a backoff
        wait_for(lambda p=point: count(kafka.bootstrap, predictions_topic) >= p, 120,
                 f"{point} predictions")
        os.kill(child, signal.SIGKILL)
        new = child_of(worker, other_than=child)
        line = wait_for(lambda c=child, n=new: re.search(
            rf"WARNING streams.supervisor: worker {c} killed by SIGKILL; restarted as {n} "
            r"in (\d+) ms", worker.log()), 30, "the restart's log line")
        restarts.append(int(line.group(1)))
        child = new
    probes = send_probes(kafka.bootstrap, topic, 2)
    predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes)
    assert worker.alive() and worker.children() == [child]
    stats = assert_effectively_once(events, probes, predictions)
    assert restarts[1] >= 500  # the second of two quick deaths waits (restart_delay(2))
    assert "Traceback" not in worker.log()
    print(f"\nsupervised, child killed twice: {stats}, restarts in {restarts} ms")


def test_a_start_up_error_is_not_restarted_and_is_the_parents_exit_code(
        kafka, redis_url, topic_prefix, start_worker):
    """A version that does not verify: the child stops in one line (the failure held until
    Faust's services run), exit code 1; the parent does not fork another and exits 1."""
    create_topic(kafka.bootstrap, f"{topic_prefix}events", 1)
    create_topic(kafka.bootstrap, f"{topic_prefix}feedback", 1)
    client = redis.Redis.from_url(redis_url)
    client.lpush(f"driftline:ckpt:{topic_prefix}app:{topic_prefix}events:0:default", b"x" * 64)
    client.close()
    worker = start_worker(**SUPERVISED)
    child = child_of(worker)
    wait_for(lambda: not worker.alive(), 90, "the supervised worker to stop")
    assert worker.stop() == 1
    assert gone(child)
    log = worker.log()
    assert "restarted" not in log
    assert log.count("worker stopped: ") == 1
    assert log.strip().splitlines()[-1].endswith(
        "worker stopped: partition 0 model default: no stored version verifies: checkpoint "
        "signature does not verify (wrong DRIFTLINE_CHECKPOINT_KEY, or altered in Redis?); "
        "not starting it blank (set DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh to start it "
        "afresh)")
    assert "Traceback" not in log


def test_sigterm_to_the_parent_stops_the_child_cleanly(kafka, topic_prefix, start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    events = send_stream(kafka.bootstrap, topic, 2_000, seed=32)
    worker = start_worker(**SUPERVISED)
    child = child_of(worker)
    wait_for(lambda: count(kafka.bootstrap, f"{topic_prefix}predictions") >= len(events), 120,
             "every event scored")
    os.kill(worker.proc.pid, signal.SIGTERM)  # the parent alone, as Kubernetes does
    wait_for(lambda: not worker.alive(), 60, "the supervised worker to stop")
    assert worker.stop() == 0
    assert gone(child)
    # The child stopped as after its own SIGTERM: final checkpoint and commit.
    offset, metadata = committed(kafka, topic_prefix)
    assert offset == len(events)
    named = decode(metadata)
    assert named is not None and named["default"].offset == len(events) - 1
    assert "restarted" not in worker.log()
    assert "Traceback" not in worker.log()


def test_the_child_stops_when_the_parent_is_killed(kafka, topic_prefix, start_worker):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    worker = start_worker(**SUPERVISED)
    child = child_of(worker)
    wait_for(lambda: "partitions assigned: " in worker.log(), 120, "the child scoring")
    os.kill(worker.proc.pid, signal.SIGKILL)
    wait_for(lambda: gone(child), 60, "the orphaned child to stop (PR_SET_PDEATHSIG)")
