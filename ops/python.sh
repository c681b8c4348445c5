#!/usr/bin/env bash
# Prints the Python interpreter Driftline's .venv is built with (ops/bootstrap.sh):
# $PYTHON if set; else a working CPython 3.13 (`python3.13`, else the newest
# `$(pyenv root)/versions/3.13*/bin/python3.13` when pyenv is installed): measured ~5% faster
# per event than 3.11, and the only version whose restored River objects keep CPython's
# fast attribute path (docs/benchmarks.md, "Python version"); else `python3`. 3.12 is
# accepted as python3 but not sought: it measured no faster than 3.11.
set -euo pipefail

# A candidate counts only if it runs and is a GIL-enabled 3.13: a pyenv shim with no 3.13
# selected fails, and free-threaded builds lack some dependencies' wheels.
is_313() {
  "$1" -c 'import sys, sysconfig
sys.exit(sys.version_info[:2] != (3, 13) or bool(sysconfig.get_config_var("Py_GIL_DISABLED")))' \
    >/dev/null 2>&1
}

pick() {
  local candidate
  if is_313 python3.13; then echo python3.13; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    while IFS= read -r candidate; do
      if is_313 "$candidate"; then echo "$candidate"; return; fi
    done < <(ls -d "$(pyenv root)"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV)
  fi
  echo python3
}

if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; else pick; fi
