"""No java or redis-server outlives `services down` or an interrupted test run.

Each step waits on a condition with a deadline generous enough for a loaded 2-core machine
(starting a JVM broker there can take a minute); a passing run pays none of it.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import redis

from streams.localservices.kafka import cluster_id_of
from tests.helpers import run_cli, service_processes, wait_for

START = 300  # s: the CLI or an inner test run starting Kafka and redis-server
STOP = 120  # s: their processes ending after `down` or the signal


def test_services_up_status_down_leaves_nothing(tmp_path):
    env = {**os.environ, "DRIFTLINE_RUN_DIR": str(tmp_path / "run")}
    env.pop("DRIFTLINE_KAFKA_BOOTSTRAP", None)
    env.pop("DRIFTLINE_REDIS_URL", None)
    up = run_cli("services", "up", env=env, timeout=START)
    assert up.returncode == 0, up.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines())
    try:
        assert len(cluster_id_of(exports["DRIFTLINE_KAFKA_BOOTSTRAP"], timeout=30)) == 22
        client = redis.Redis.from_url(exports["DRIFTLINE_REDIS_URL"], socket_timeout=30)
        assert client.ping()
        client.close()
        status = run_cli("services", "status", env=env, timeout=START)
        assert status.stdout.count("running") == 2, status.stdout + status.stderr
        wait_for(lambda: len(service_processes(str(tmp_path / "run"))) == 2, STOP,
                 "java and redis-server processes")
    finally:
        down = run_cli("services", "down", env=env, timeout=START)
    assert down.stdout.strip() == "stopped: kafka, redis", down.stdout + down.stderr
    wait_for(lambda: service_processes(str(tmp_path / "run")) == [], STOP,
             "the services' processes to end")


def test_up_again_with_its_own_exports_reuses_and_keeps_recording(tmp_path):
    """`eval "$(driftline services up)"` twice in one shell: one Kafka, one Redis, both
    still stopped by `down` (the second `up` used to forget them and start a second pair)."""
    run = str(tmp_path / "run")
    env = {**os.environ, "DRIFTLINE_RUN_DIR": run}
    env.pop("DRIFTLINE_KAFKA_BOOTSTRAP", None)
    env.pop("DRIFTLINE_REDIS_URL", None)
    first = run_cli("services", "up", env=env, timeout=START)
    assert first.returncode == 0, first.stderr
    exports = dict(line.removeprefix("export ").split("=", 1)
                   for line in first.stdout.splitlines())
    try:
        pids = {name: entry["pid"] for name, entry in
                json.loads((tmp_path / "run" / "services.json").read_text()).items()}
        assert sorted(pids) == ["kafka", "redis"]
        for _ in range(2):
            again = run_cli("services", "up", env={**env, **exports}, timeout=START)
            assert again.returncode == 0, again.stderr
            assert again.stdout == first.stdout
            state = json.loads((tmp_path / "run" / "services.json").read_text())
            assert {name: entry["pid"] for name, entry in state.items()} == pids
        assert len(service_processes(run)) == 2
    finally:
        down = run_cli("services", "down", env={**env, **exports}, timeout=START)
    assert down.stdout.strip() == "stopped: kafka, redis", down.stdout + down.stderr
    wait_for(lambda: service_processes(run) == [], STOP, "the services' processes to end")
    # The same shell, its exports now pointing at nothing: `up` starts new services.
    fresh = run_cli("services", "up", env={**env, **exports}, timeout=START)
    try:
        assert fresh.returncode == 0, fresh.stderr
        state = json.loads((tmp_path / "run" / "services.json").read_text())
        assert sorted(state) == ["kafka", "redis"]
        assert len(service_processes(run)) == 2
    finally:
        down = run_cli("services", "down", env={**env, **exports}, timeout=START)
    assert down.stdout.strip() == "stopped: kafka, redis", down.stdout + down.stderr
    wait_for(lambda: service_processes(run) == [], STOP, "the services' processes to end")


def test_pointed_elsewhere_is_not_started(tmp_path, kafka, redis_server):
    env = {**os.environ, "DRIFTLINE_RUN_DIR": str(tmp_path / "run"),
           "DRIFTLINE_KAFKA_BOOTSTRAP": kafka.bootstrap, "DRIFTLINE_REDIS_URL": redis_server}
    up = run_cli("services", "up", env=env, timeout=START)
    assert up.returncode == 0, up.stderr
    assert f"export DRIFTLINE_KAFKA_BOOTSTRAP={kafka.bootstrap}" in up.stdout
    assert service_processes(str(tmp_path / "run")) == []


INNER_TEST = textwrap.dedent('''
    import os, threading
    from pathlib import Path

    def test_hold(kafka, redis_server):
        Path(os.environ["READY_FILE"]).write_text(kafka.bootstrap)
        threading.Event().wait(600)
''')


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_test_run_leaves_nothing(tmp_path, how):
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    basetemp = tmp_path / "inner-tmp"
    ready = tmp_path / "ready"
    env = {**os.environ, "READY_FILE": str(ready), "PYTHONPATH": os.getcwd()}
    env.pop("DRIFTLINE_TEST_KAFKA_BOOTSTRAP", None)
    env.pop("DRIFTLINE_TEST_REDIS_URL", None)
    output = tmp_path / "inner.log"
    with output.open("wb") as log:
        inner = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
             str(tmp_path), "-c", "/dev/null", f"--basetemp={basetemp}",
             str(tmp_path / "test_inner.py")],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: ready.exists() or inner.poll() is not None, START,
                 "the inner run's services")
        assert ready.exists(), output.read_text()[-3000:]
        # java and redis-server; under load their process titles can show up late
        wait_for(lambda: len(service_processes(str(basetemp))) == 2, STOP,
                 "the inner run's java and redis-server processes")
        inner.send_signal(how)
        inner.wait(timeout=STOP)  # ctrl-c: pytest's teardown stops both (TERM, then KILL)
        wait_for(lambda: service_processes(str(basetemp)) == [], STOP,
                 "services of the interrupted run to end")
    finally:
        inner.kill()
