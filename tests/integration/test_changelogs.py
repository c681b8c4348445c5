"""The Faust tables' changelog topics exist, with the alerts topic's partition count, before
Faust's consumer subscribes to them (a changelog Faust created after its consumer's
metadata snapshot counted 0 partitions, and the incidents agent crashed on its first table
write with PartitionsMismatch: seen under load)."""

import asyncio

import pytest

from schemas.settings import Settings
from streams.kafka_clients import partition_counts
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_the_changelog_topics_are_created_before_faust_subscribes(kafka, topic_prefix,
                                                                  start_worker):
    worker = start_worker(DRIFTLINE_TOPIC_PARTITIONS="3")
    wait_for(lambda: "created changelog topics" in worker.log(), 60, "changelogs created")
    log = worker.log()
    group = worker.env["DRIFTLINE_APP_ID"]
    names = [f"{group}-worker-incidents-changelog",
             f"{group}-worker-incidents-progress-changelog"]
    # created by the app's start, before Faust's consumer and its services start
    assert log.index("created changelog topics") < log.index("ScoringService]: Starting")
    counts = asyncio.run(partition_counts(Settings(kafka_bootstrap=kafka.bootstrap), names))
    assert counts == dict.fromkeys(names, 3)
    assert "PartitionsMismatch" not in log
