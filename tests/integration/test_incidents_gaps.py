"""The incidents agent does not trust the consumer to hand it every alert: alerts its
Faust consumer skipped (as it does around rebalances, see the module docstring of
streams.incidents) are read and joined anyway. On the real broker, the skip is made
deterministic by committing the agent's group past alerts no worker has handled."""

import asyncio
import signal

from schemas.settings import Settings
from streams.kafka_clients import make_reader
from tests.integration.test_incidents_rebalance import MODELS, MODELS_TOML, alert, listed
from tests.integration.test_incidents_rebalance import reader_view as view
from tests.kafka_tools import consume_until, create_topic, produce


def publish(bootstrap: str, topic: str, ns: range) -> dict[tuple[str, int], tuple[int, int]]:
    """Alert ``n`` of every model for each ``n`` in ``ns``; (model, n) -> (partition,
    offset) where it landed on the alerts topic."""
    keys = [(m, n) for n in ns for m in MODELS]
    landed = produce(bootstrap, topic, [(m.encode(), alert(m, n)) for m, n in keys])
    return {k: (md.partition, md.offset) for k, md in zip(keys, landed, strict=True)}


def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` (partition -> next offset to read) for the (empty) ``group``."""
    from aiokafka import TopicPartition

    async def run() -> None:
        consumer = make_reader(Settings(kafka_bootstrap=bootstrap), group_id=group)
        await consumer.start()
        try:
            tps = {p: TopicPartition(topic, p) for p in offsets}
            consumer.assign(list(tps.values()))
            await consumer.commit({tps[p]: o for p, o in offsets.items()})
        finally:
            await consumer.stop()
    asyncio.run(run())


def first_offsets(landed, ns: range) -> dict[int, int]:
    """Per partition, the offset of the first alert among ``ns``."""
    out: dict[int, int] = {}
    for (_, n), (p, o) in landed.items():
        if n in ns:
            out[p] = min(o, out.get(p, o))
    return out


def expected(ns: range) -> set[tuple[str, int, int]]:
    return {(m, n % 6, 1000 + n) for m in MODELS for n in ns}


def wait_all_listed(bootstrap: str, topic_prefix: str, want, worker) -> None:
    try:
        consume_until(bootstrap, f"{topic_prefix}incidents",
                      lambda rs: listed(view(rs)) >= want, timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.log()[-4000:]}") from None


def test_alerts_the_consumer_skipped_still_join_their_incidents(
        kafka, topic_prefix, start_worker, tmp_path):
    bootstrap, group = kafka.bootstrap, f"{topic_prefix}app-worker"
    alerts = f"{topic_prefix}alerts"
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML)
    create_topic(bootstrap, alerts, partitions=4)  # as the workers create it
    # 1. Skipped before anything was handled: the group starts past alerts 0-4.
    landed = publish(bootstrap, alerts, range(10))
    commit(bootstrap, group, alerts, first_offsets(landed, range(5, 10)))
    worker = start_worker(DRIFTLINE_MODELS=str(models))
    wait_all_listed(bootstrap, topic_prefix, expected(range(10)), worker)
    assert worker.stop(signal.SIGTERM) == 0
    # 2. A gap after handled alerts: 10-19 skipped, 20-29 handed over.
    landed = publish(bootstrap, alerts, range(10, 30))
    commit(bootstrap, group, alerts, first_offsets(landed, range(20, 30)))
    worker = start_worker(DRIFTLINE_MODELS=str(models))
    wait_all_listed(bootstrap, topic_prefix, expected(range(30)), worker)
    assert worker.stop(signal.SIGTERM) == 0
    # 3. Skipped at the tail: nothing after them is ever handed over.
    landed = publish(bootstrap, alerts, range(30, 40))
    ends: dict[int, int] = {}
    for p, o in landed.values():
        ends[p] = max(o + 1, ends.get(p, 0))
    commit(bootstrap, group, alerts, ends)
    worker = start_worker(DRIFTLINE_MODELS=str(models))
    wait_all_listed(bootstrap, topic_prefix, expected(range(40)), worker)
    records = consume_until(bootstrap, f"{topic_prefix}incidents",
                            lambda rs: listed(view(rs)) >= expected(range(40)), timeout=30)
    ids = {}
    for incident in view(records).values():
        ids.setdefault(incident.model, set()).add(incident.incident_id)
    assert {m: len(v) for m, v in ids.items()} == {m: 1 for m in MODELS}, ids
    log = worker.log()
    assert worker.alive(), log[-3000:]
