"""Small helpers shared by the tests."""

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from streams.localservices.workers import DRIFTLINE


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``driftline`` console script and capture its output."""
    return subprocess.run([DRIFTLINE, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``.

    Between checks it pauses 50 ms, or twice what the last check took when that is more
    (a check that opens a Kafka client then takes at most a third of one core from the
    workers it waits for, on a 2-core machine)."""
    deadline = time.monotonic() + timeout
    while True:
        began = time.monotonic()
        value = condition()
        if value:
            return value
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(min(max(0.05, 2 * (now - began)), 1.0, max(0.0, deadline - now)))


def service_processes(under: str) -> list[int]:
    """Pids of live java / redis-server processes whose command line or cwd is under ``under``.

    redis-server rewrites its command line, so its working directory (its
    ``--dir``) is what ties it to a folder.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if comm in ("java", "redis-server") and state != "Z" and (
                under in cmdline or cwd.startswith(under)):
            found.append(int(proc.name))
    return found


def env_with_path(path_dirs: list[Path], **extra: str) -> dict[str, str]:
    """The current environment with PATH replaced and some variables added."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(str(d) for d in path_dirs)
    env.update(extra)
    return env


def bin_dir_with(tmp: Path, *names: str) -> Path:
    """A folder holding links to just the named executables."""
    folder = tmp / "bin"
    folder.mkdir(exist_ok=True)
    for name in names:
        target = shutil.which(name)
        assert target, f"{name} must be installed for this test"
        (folder / name).symlink_to(target)
    return folder
