"""ops/python.sh picks the interpreter ops/bootstrap.sh builds .venv with: $PYTHON, else a
working CPython 3.13 (python3.13, else pyenv's newest 3.13.x), else python3.

The candidates are stand-in scripts on a PATH that holds nothing else (bash, ls and sort
only): one that exits 0 passes the script's 3.13 check, one that exits 1 fails it, as a
pyenv shim with no version selected does.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.ops import ROOT

SCRIPT = ROOT / "ops" / "python.sh"
PASSES, FAILS = "#!/bin/sh\nexit 0\n", "#!/bin/sh\nexit 1\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _pick(tmp_path: Path, candidates: dict[str, str], pyenv_versions: dict[str, str] | None,
          python: str | None = None) -> str:
    """The script's answer with ``candidates`` (name -> script) on PATH, and pyenv with
    ``pyenv_versions`` (version -> its python3.13's script) installed unless None."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "ls", "sort"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for name, text in candidates.items():
        _write(bin_dir / name, text)
    if pyenv_versions is not None:
        root = tmp_path / "pyenv"
        for version, text in pyenv_versions.items():
            _write(root / "versions" / version / "bin" / "python3.13", text)
        _write(bin_dir / "pyenv", f'#!/bin/sh\n[ "$1" = root ] && echo "{root}"\n')
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    if python is not None:
        env["PYTHON"] = python
    out = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], env=env, capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout.strip()


def test_a_working_python3_13_on_path_is_chosen(tmp_path):
    assert _pick(tmp_path, {"python3.13": PASSES}, {"3.13.1": PASSES}) == "python3.13"


def test_a_failing_shim_falls_back_to_pyenvs_newest_working_3_13(tmp_path):
    versions = {"3.12.1": PASSES, "3.13.2": PASSES, "3.13.10": PASSES, "3.13.11": FAILS}
    chosen = _pick(tmp_path, {"python3.13": FAILS}, versions)
    # 3.13.10 sorts after 3.13.2 as a version; 3.13.11 does not run; 3.12 is not sought
    assert chosen == str(tmp_path / "pyenv" / "versions" / "3.13.10" / "bin" / "python3.13")


def test_without_3_13_python3_is_used(tmp_path):
    assert _pick(tmp_path, {"python3.13": FAILS}, None) == "python3"
    (tmp_path / "b").mkdir()
    assert _pick(tmp_path / "b", {}, {"3.11.7": PASSES}) == "python3"


def test_python_overrides_the_choice(tmp_path):
    assert _pick(tmp_path, {"python3.13": PASSES}, None, python="/opt/py/bin/python3.11") \
        == "/opt/py/bin/python3.11"


def test_the_check_runs_the_candidate(tmp_path):
    # This interpreter first on PATH as python3.13: chosen exactly when it is a GIL-enabled
    # 3.13 (another 3.13 could only be found through pyenv, as a full path).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.13").symlink_to(sys.executable)
    is_313 = (sys.version_info[:2] == (3, 13)
              and not sysconfig.get_config_var("Py_GIL_DISABLED"))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHON", None)
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=30, check=True)
    assert (out.stdout.strip() == "python3.13") == is_313
