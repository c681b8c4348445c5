"""The supervising parent of ``driftline worker --supervise`` over a stand-in child (a
few lines of Python instead of the worker; no Kafka, no Redis): which deaths it restarts,
its backoff, its exit code, signal forwarding and the child dying with it. The worker
itself under the supervisor: tests/integration/test_supervised_worker.py."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import supervisor
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]

#: The parent runs ``supervise()``; each child appends its pid to ``runs`` and then does
#: the plan's step for its turn: ``kill`` (SIGKILL itself), ``exitN``, or ``wait`` (until
#: SIGTERM, which it writes down in ``runs`` before exiting 0).
CHILD = """
import logging, os, signal, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from streams import supervisor
if len(sys.argv) > 3:
    supervisor.BACKOFF_FIRST_S = float(sys.argv[3])
supervisor.supervise()
runs, plan = Path(sys.argv[1]), sys.argv[2].split(",")
turn = len(runs.read_text().split()) if runs.exists() else 0
with runs.open("a") as out:
    out.write(f"{os.getpid()}\\n")
step = plan[min(turn, len(plan) - 1)]
if step == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if step.startswith("exit"):
    sys.exit(int(step[4:]))
def stop(*_):
    with runs.open("a") as out:
        out.write("term\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    signal.pause()
"""


def start(tmp_path: Path, plan: str, *backoff: str) -> tuple[subprocess.Popen[str], Path]:
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(runs), plan, *backoff], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    return proc, runs


def pids(runs: Path) -> list[int]:
    return [int(w) for w in runs.read_text().split() if w.isdigit()] if runs.exists() else []


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_a_killed_child_is_restarted_at_once_and_its_clean_exit_ends_the_parent(tmp_path):
    proc, runs = start(tmp_path, "kill,exit0")
    code, out = finish(proc)
    first, second = pids(runs)
    assert code == 0
    (line,) = re.findall(rf"worker {first} killed by SIGKILL; restarted as {second} in "
                         r"(\d+) ms", out)
    assert int(line) < 400  # no backoff for a first death
    assert f"worker {first} started (supervised by {proc.pid})" in out


def test_exit_code_1_is_not_restarted_and_is_the_parents(tmp_path):
    proc, runs = start(tmp_path, "exit1,exit0")
    code, out = finish(proc)
    assert code == 1
    assert len(pids(runs)) == 1
    assert "restarted" not in out


def test_other_exit_codes_are_restarted_with_backoff_after_quick_deaths(tmp_path):
    proc, runs = start(tmp_path, "exit3,exit70,exit0")
    code, out = finish(proc)
    first, second, third = pids(runs)
    assert code == 0
    delays = re.findall(r"worker (\d+) exited with code (\d+); restarted as (\d+) in (\d+) ms",
                        out)
    assert [(int(a), int(c), int(b)) for a, c, b, _ in delays] == [
        (first, 3, second), (second, 70, third)]
    assert int(delays[0][3]) < 400  # the first quick death: at once
    assert int(delays[1][3]) >= supervisor.restart_delay(2) * 1000  # the second: backoff


def test_sigterm_to_the_parent_stops_the_child_and_the_parent_exits_with_its_status(tmp_path):
    proc, runs = start(tmp_path, "wait")
    wait_for(lambda: pids(runs), 30, "the child to start")
    proc.send_signal(signal.SIGTERM)  # the parent only, not its process group
    code, out = finish(proc)
    assert code == 0
    assert runs.read_text().split()[1:] == ["term"]
    assert "restarted" not in out


def test_a_child_killed_while_stopping_is_not_restarted(tmp_path):
    proc, runs = start(tmp_path, "wait")
    wait_for(lambda: pids(runs), 30, "the child to start")
    os.kill(pids(runs)[0], signal.SIGSTOP)  # cannot handle the SIGTERM the parent forwards
    proc.send_signal(signal.SIGTERM)
    os.kill(pids(runs)[0], signal.SIGKILL)
    code, out = finish(proc)
    assert code == 128 + signal.SIGKILL
    assert len(pids(runs)) == 1
    assert "restarted" not in out


def test_the_child_gets_sigterm_when_the_parent_dies(tmp_path):
    proc, runs = start(tmp_path, "wait")
    wait_for(lambda: pids(runs), 30, "the child to start")
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: "term" in runs.read_text(), 30, "the orphan to get SIGTERM")


@given(st.integers(min_value=1, max_value=10_000))
def test_the_restart_delay_grows_and_is_bounded(quick):
    delay = supervisor.restart_delay(quick)
    assert 0.0 <= delay <= supervisor.BACKOFF_MAX_S
    assert supervisor.restart_delay(quick + 1) >= delay
    assert (delay == 0.0) == (quick == 1)


@pytest.mark.parametrize(("status", "expected"), [
    (0, supervisor.Next.EXIT), (1 << 8, supervisor.Next.EXIT),
    (2 << 8, supervisor.Next.RESTART), (137 << 8, supervisor.Next.RESTART),
    (signal.SIGKILL, supervisor.Next.RESTART), (signal.SIGSEGV, supervisor.Next.RESTART),
    (signal.SIGTERM, supervisor.Next.RESTART)])
def test_which_ends_are_restarted(status, expected):
    assert supervisor.verdict(status) is expected


def test_exit_code_1_of_a_restarted_child_is_restarted_with_backoff(tmp_path):
    """Kill -9, then the new child cannot start (Redis down at that moment, say): the
    settings worked before, so the parent keeps restarting (attacker review, newcomer M4)."""
    proc, runs = start(tmp_path, "kill,exit1,exit1,exit0")
    code, out = finish(proc)
    assert code == 0
    assert len(pids(runs)) == 4
    assert len(re.findall(r"exited with code 1; restarted as", out)) == 2


def test_sigterm_while_waiting_to_restart_exits_with_the_last_childs_status(tmp_path):
    proc, runs = start(tmp_path, "kill,kill,wait", "30")  # the second quick death waits 30 s
    wait_for(lambda: len(pids(runs)) == 2 and not _alive(pids(runs)[1]), 30,
             "second child died")
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 128 + signal.SIGKILL  # not 0: the last worker did not stop cleanly
    assert len(pids(runs)) == 2
    assert re.search(rf"worker {pids(runs)[1]} killed by SIGKILL; stopped while waiting", out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
