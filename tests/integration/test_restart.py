"""Issue 16, restart after kill -9: the replacement scores without waiting for Faust's own
start-up (the incidents agent's consumer group and tables).

The killed worker stays a member of the incidents agent's group (Faust's consumer has no
static membership) until its session timeout; the scoring consumer, a static member
(``DRIFTLINE_INSTANCE_ID``), gets its partition back at once. Predictions must resume
while the agent's group still waits for the dead member, and nothing is lost or learned
twice.
"""

import asyncio
import signal

from aiokafka.errors import KafkaError

from schemas.settings import Settings
from streams.kafka_clients import make_admin
from tests.helpers import wait_for
from tests.integration.test_recovery import send_stream
from tests.kafka_tools import count, create_topic
from tests.recovery import assert_effectively_once, send_probes, wait_for_probes

#: A long session timeout keeps the dead member in the agent's group for 30 s: the window
#: in which the replacement must already score.
SLOW_AGENT_GROUP = {"DRIFTLINE_SESSION_TIMEOUT": "30", "DRIFTLINE_HEARTBEAT_INTERVAL": "1",
                    "DRIFTLINE_INSTANCE_ID": "worker-0"}


def group(bootstrap: str, group_id: str) -> tuple[str, frozenset[str]]:
    """The group's state and its members' ids ("" and none while it has no coordinator)."""
    async def run() -> tuple[str, frozenset[str]]:
        admin = make_admin(Settings(kafka_bootstrap=bootstrap))
        await admin.start()
        try:
            (described,) = await admin.describe_consumer_groups([group_id])
        except KafkaError:
            return "", frozenset()
        finally:
            await admin.close()
        (found,) = described.groups
        return found[2], frozenset(member[0] for member in found[5])
    return asyncio.run(run())


def test_scoring_resumes_while_the_agents_group_still_waits_for_the_dead_member(
        kafka, topic_prefix, start_worker):
    topic = f"{topic_prefix}events"
    agents = f"{topic_prefix}app-worker"
    create_topic(kafka.bootstrap, topic, partitions=1)
    events = send_stream(kafka.bootstrap, topic, 3_000, seed=21)
    first = start_worker(**SLOW_AGENT_GROUP)
    settled = wait_for(lambda: count(kafka.bootstrap, f"{topic_prefix}predictions") >= 3_000
                       and (g := group(kafka.bootstrap, agents))[0] == "Stable"
                       and len(g[1]) == 1 and g, 120, "the first worker scoring, its agent in")
    dead = settled[1]
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    probes = send_probes(kafka.bootstrap, topic, 1)
    second = start_worker(**SLOW_AGENT_GROUP)
    predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes, timeout=120)
    state, members = group(kafka.bootstrap, agents)
    assert state != "Stable" or members == dead, (
        f"the agent's group settled ({state}, {members}) before the replacement scored")
    assert_effectively_once(events, probes, predictions)
    # The agent's group still settles with the replacement once the dead member expires.
    wait_for(lambda: (g := group(kafka.bootstrap, agents))[0] == "Stable"
             and len(g[1]) == 1 and g[1] != dead, 90, "the replacement in the agent's group")
    assert second.alive(), second.log()[-3000:]
