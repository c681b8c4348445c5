"""Fixtures for tests that run Driftline workers against the real services."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.localservices.workers import WorkerProcess, worker_env


@pytest.fixture
def start_worker(kafka, redis_url, topic_prefix, tmp_path) -> Iterator[
        Callable[..., WorkerProcess]]:
    """Start ``driftline worker`` subprocesses (stopped at teardown); kwargs become env."""
    workers: list[WorkerProcess] = []

    def start(**extra: str) -> WorkerProcess:
        env = worker_env(kafka.bootstrap, redis_url, topic_prefix, tmp_path, **extra)
        worker = WorkerProcess(env, Path(tmp_path / f"worker{len(workers)}.log")).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
