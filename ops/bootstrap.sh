#!/usr/bin/env bash
# Installs what Driftline needs on a fresh Debian machine, then the Python deps in .venv.
# Idempotent: a second run installs nothing unless pyproject.toml or the chosen Python changed.
# Quiet: one line per step (what, how long); the installers' own output goes to a log
# file, whose path and last lines are printed only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "driftline bootstrap: $*" >&2; }

python=$(bash ops/python.sh)  # $PYTHON, else 3.13 if it runs here, else python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "Python 3.11 or newer is required as '$python' (set PYTHON=... to choose another)"
  exit 1
fi
version=$("$python" -c 'import platform; print(platform.python_version())')
stamp=.venv/.installed  # "<pyproject.toml hash> python-<version>" of the last install
want="$(sha256sum pyproject.toml | cut -c1-16) python-$version"
have=$(cat "$stamp" 2>/dev/null || true)
built=$(.venv/bin/python -c 'import platform; print("built with Python",
platform.python_version())' 2>/dev/null || true)
if [ -e .venv/pyvenv.cfg ] && [ "$built" != "built with Python $version" ]; then
  # A venv cannot change interpreter: built by another Python (or unfinished), start over.
  say "removing .venv (${built:-its Python no longer runs}; this run uses Python $version)"
  rm -rf .venv
fi
mkdir -p .venv  # the log lives in the (git-ignored) venv folder
log=$PWD/.venv/bootstrap.log
: > "$log"

# step "what it does" command...: runs the command with its output in the log, then prints
# one line with the time it took; on failure, the log's path and its last lines.
step() {
  local what=$1 start=$SECONDS
  shift
  echo "== $what: $*" >> "$log"
  if "$@" >> "$log" 2>&1; then
    say "$what ($((SECONDS - start)) s)"
  else
    local rc=$?
    say "FAILED: $what (exit $rc); full output in $log, last lines:"
    tail -n 20 "$log" | sed 's/^/    /' >&2
    exit "$rc"
  fi
}

need=()
if ! command -v java >/dev/null 2>&1; then need+=(default-jre-headless); fi
if ! command -v mvn >/dev/null 2>&1; then need+=(maven); fi
if ! command -v redis-server >/dev/null 2>&1; then need+=(redis-server); fi
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then need+=(prometheus); fi
if ((${#need[@]})); then
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      say "missing ${need[*]}: install these Debian packages (or their equivalents) and run again"
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${need[*]}: install these packages (or their equivalents) and run again"
    exit 1
  fi
  step "apt-get update" "${sudo[@]}" apt-get update
  step "installed ${need[*]} (apt-get)" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${need[@]}"
fi

if [ ! -x .venv/bin/python ] || [ "$have" != "$want" ]; then
  step "created .venv with Python $version ($python)" "$python" -m venv .venv
  step "upgraded pip" .venv/bin/pip install --disable-pip-version-check --upgrade pip
  step "installed Driftline and its Python dependencies into .venv (pyproject.toml)" \
    .venv/bin/pip install --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi
