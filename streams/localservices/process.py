"""Start and stop a service process so that none is ever left behind.

>>> proc = ManagedProcess.spawn(["sleep", "30"], log_path=None, die_with_parent=True)
>>> proc.alive()
True
>>> proc.stop(timeout=5)
>>> proc.alive()
False
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams import pdeathsig
from streams.exceptions import ServiceError


def require_executable(name: str, hint: str) -> str:
    """The full path of ``name`` on PATH, or a one-line :class:`ServiceError`."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name} not found on PATH: {hint}")
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGKILL this child when the process that spawned it dies."""
    pdeathsig.die_with_parent(signal.SIGKILL)


@dataclass
class ManagedProcess:
    """A child process in its own session, stopped with TERM then KILL."""

    pid: int
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        log_path: Path | None,
        die_with_parent: bool,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> "ManagedProcess":
        """Start ``argv``; with ``die_with_parent`` it cannot outlive its parent."""
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
                env=env,
                cwd=cwd,
            )
        finally:
            if log_path:
                out.close()  # type: ignore[union-attr]
        return cls(pid=popen.pid, popen=popen)

    def alive(self) -> bool:
        """True while the process runs (a zombie counts as gone)."""
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, wait up to ``timeout``, then SIGKILL it."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 30.0)):
            if not self.alive():
                return
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            if wait_until(lambda: not self.alive(), wait):
                return
        raise ServiceError(f"process {self.pid} would not stop")


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held.

    >>> wait_until(lambda: True, 1.0)
    True
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
