"""``driftline worker`` as a subprocess: for the demo, the tests and the benchmarks.

>>> env = worker_env("127.0.0.1:9092", "redis://127.0.0.1:6379/0", "t1.", Path("/tmp/w"))
>>> env["DRIFTLINE_APP_ID"], env["DRIFTLINE_TOPIC_PREFIX"]
('t1.app', 't1.')
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from streams.localservices.ports import free_port

DRIFTLINE = str(Path(sys.executable).with_name("driftline"))


class WorkerProcess:
    """One worker process with its own environment, logging to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "WorkerProcess":
        """Start the process (in its own session, so a signal reaches only it)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([DRIFTLINE, "worker"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        """Pids of the process's children (a supervised worker's child), from /proc."""
        if not self.alive():
            return []
        assert self.proc is not None
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:  # it has just ended
            return []
        return [int(pid) for pid in text.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Send ``sig``, wait up to ``timeout`` (then SIGKILL); return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log(self) -> str:
        """Everything the worker printed so far."""
        return self.log_path.read_text(errors="replace")


def worker_env(bootstrap: str, redis_url: str, prefix: str, tmp: Path,
               **extra: str) -> dict[str, str]:
    """The environment of a worker isolated by topic prefix, group, port and folder."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("DRIFTLINE_"):
            del env[name]
    env.update({
        "DRIFTLINE_KAFKA_BOOTSTRAP": bootstrap,
        "DRIFTLINE_REDIS_URL": redis_url,
        "DRIFTLINE_TOPIC_PREFIX": prefix,
        "DRIFTLINE_APP_ID": f"{prefix}app",
        "DRIFTLINE_WEB_PORT": str(free_port()),
        "DRIFTLINE_WEB_HOST": "127.0.0.1",
        "DRIFTLINE_DATA_DIR": str(tmp / "worker-data"),
        "DRIFTLINE_CHECKPOINT_KEY": f"local-{prefix}-checkpoint-key-of-32-bytes-or-more",
        **extra,
    })
    return env
