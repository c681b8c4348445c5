"""``driftline worker --supervise``: a warm parent that forks the worker and, when the
worker dies, forks a new one at once.

A new ``driftline worker`` process spends 1.4-1.8 s of CPU importing its libraries
(numpy, scipy, River, Faust, aiokafka...) before it can score anything
(``docs/benchmarks.md``, "kill -9 to first prediction"). The supervising parent pays
that once: it imports everything, reads the settings and the models file, then forks the
worker; a new child starts from the parent's imported image (copy-on-write), so it only
connects, joins the group as the same static member (``DRIFTLINE_INSTANCE_ID``: it gets
its partitions back without a rebalance), restores and scores. Like gunicorn's master,
the parent opens no Kafka or Redis connection, no event loop and no thread before a fork,
and the web port is the child's.

What the parent does when its child ends (:func:`verdict`):

- killed by a signal (kill -9, the OOM killer, a segfault) or exited with another code
  than 0 and 1: a new child is forked at once; after repeated quick deaths (children that
  lived less than :data:`QUICK_DEATH_S`) with a growing delay (:func:`restart_delay`).
  One log line per restart: ``worker 812 killed by SIGKILL; restarted as 833 in 2 ms``;
- exit code 0 (a clean stop): the parent exits 0;
- exit code 1 of the first child within :data:`QUICK_DEATH_S` of its start (a
  configuration or start-up error: the child's last line said why): the parent exits 1,
  restarting would fail the same way. Exit code 1 of a restarted child, or of one that
  ran longer (Kafka or Redis unreachable when it restarts, a delivery that failed): a new
  child with the same backoff — the settings are the ones that already worked, so the
  cause is one that passes (as Kubernetes restarts a crashing container, without end).

SIGTERM and SIGINT are forwarded to the child; the parent then exits with the child's
status (``128 + n`` for a child killed by signal ``n``). The child gets SIGTERM when the
parent dies (``PR_SET_PDEATHSIG``: it stops as after a SIGTERM, checkpoints and
commits), so no orphan keeps the partitions. Linux only (``fork``, ``prctl``).

This only helps when the worker process alone dies, not its container or host.
"""

import enum
import gc
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from streams import pdeathsig
from streams.exceptions import ServiceError

log = logging.getLogger(__name__)

#: A child that dies sooner after its start than this counts as a quick death.
QUICK_DEATH_S = 60.0
#: Delay before the restart after the second quick death in a row; doubled for each
#: further one, up to :data:`BACKOFF_MAX_S`. The first restart is immediate.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0

_STOP = frozenset({signal.SIGTERM, signal.SIGINT})
_WAITED = _STOP | {signal.SIGCHLD}


class Next(enum.Enum):
    """What the parent does when its child has ended."""

    RESTART = "restart"
    EXIT = "exit"


def verdict(status: int, ran: bool = False) -> Next:
    """Restart a child killed by a signal or exited with a code other than 0 (a clean stop)
    and 1 (a configuration or start-up error, unless ``ran``: the worker ran before with
    these settings); exit otherwise.

    ``status``: as returned by :func:`os.waitpid`.

    >>> verdict(signal.SIGKILL), verdict(3 << 8), verdict(1 << 8, ran=True)
    (<Next.RESTART: 'restart'>, <Next.RESTART: 'restart'>, <Next.RESTART: 'restart'>)
    >>> verdict(0), verdict(1 << 8), verdict(0, ran=True)
    (<Next.EXIT: 'exit'>, <Next.EXIT: 'exit'>, <Next.EXIT: 'exit'>)
    """
    if os.WIFSIGNALED(status):
        return Next.RESTART
    code = os.WEXITSTATUS(status)
    return Next.EXIT if code == 0 or (code == 1 and not ran) else Next.RESTART


def exit_code(status: int) -> int:
    """The parent's exit code for a child's wait ``status``: its exit code, or ``128 + n``
    when signal ``n`` killed it (as shells report it).

    >>> exit_code(0), exit_code(1 << 8), exit_code(signal.SIGKILL)
    (0, 1, 137)
    """
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def describe(status: int) -> str:
    """How a child ended, for the log.

    >>> describe(signal.SIGKILL), describe(2 << 8)
    ('killed by SIGKILL', 'exited with code 2')
    """
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def restart_delay(quick_deaths: int) -> float:
    """Seconds to wait before forking a new child after ``quick_deaths`` quick deaths in a
    row (this one included): none after the first, then :data:`BACKOFF_FIRST_S`, doubled
    each time, at most :data:`BACKOFF_MAX_S`.

    >>> [restart_delay(n) for n in range(1, 8)]
    [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    >>> restart_delay(40)
    30.0
    """
    if quick_deaths <= 1:
        return 0.0
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(quick_deaths - 2, 16))


@dataclass
class _Child:
    pid: int
    started: float  # time.monotonic()


def supervise() -> None:
    """Fork the worker and supervise it; return only in the child, which then runs the
    worker. The parent never returns: it exits with the status of its last child
    (see the module's docstring).

    Call it after every import and check that needs no connection, before any event
    loop, thread or connection is opened.

    Raises:
        ServiceError: (in the parent) ``fork`` or ``prctl`` is not available here.
    """
    if not pdeathsig.AVAILABLE or not hasattr(os, "fork"):
        raise ServiceError("driftline worker --supervise needs Linux (fork, prctl)")
    if threading.active_count() > 1:  # a fork copies only the calling thread
        log.warning("supervisor: %d threads run before the fork; the worker gets only one",
                    threading.active_count())
    parent = os.getpid()
    # Blocked, and taken with sigwaitinfo: a signal arriving while a child is forked is
    # only handled once its pid is known, and the loop needs no handler.
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
    child = _fork(parent, unblocked)
    if child is None:
        return
    log.info("worker %d started (supervised by %d)", child.pid, parent)
    code = _watch(child, parent, unblocked)
    if code is None:  # a child forked again by the parent's loop: it runs the worker
        return
    sys.exit(code)


def _fork(parent: int, unblocked: set[signal.Signals]) -> _Child | None:
    """A new child (``None`` in the child itself, set up to run the worker)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered is written twice
    gc.freeze()  # the child's collections leave the imported objects' pages shared
    pid = os.fork()
    if pid:
        return _Child(pid, time.monotonic())
    pdeathsig.die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)
    signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
    return None


def _watch(child: _Child, parent: int, unblocked: set[signal.Signals]) -> int | None:
    """Restart ``child`` each time it dies until a stop or an exit code says otherwise;
    the code the parent exits with (``None`` in a new child)."""
    quick = 0
    stopping = False
    restarted = False
    while True:
        got = signal.sigwait(_WAITED)
        if got != signal.SIGCHLD:  # SIGTERM, SIGINT: the child stops, then the parent
            stopping = True
            os.kill(child.pid, got)
            continue
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid == 0:  # another child's SIGCHLD (none is expected)
            continue
        died = time.monotonic()
        ran = restarted or died - child.started >= QUICK_DEATH_S
        if stopping or verdict(status, ran) is Next.EXIT:
            return exit_code(status)
        quick = quick + 1 if died - child.started < QUICK_DEATH_S else 1
        delay = restart_delay(quick)
        if delay and signal.sigtimedwait(_STOP, delay) is not None:
            log.warning("worker %d %s; stopped while waiting %.1f s to restart it", child.pid,
                        describe(status), delay)
            return exit_code(status)  # asked to stop while no child runs: how the last ended
        restarted = True
        old = child.pid
        forked = _fork(parent, unblocked)
        if forked is None:
            return None
        child = forked
        log.warning("worker %d %s; restarted as %d in %.0f ms", old, describe(status),
                    child.pid, (time.monotonic() - died) * 1000.0)

