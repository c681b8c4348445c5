"""µs per event of a learner on each Python: live, after a snapshot, and restored.

CPython keeps an object's attributes in an inline array its specialised bytecode reads
directly; pickling an object materialises its ``__dict__`` and, on 3.11/3.12, the object
loses that fast path for good. This bench measures what that costs, and what a Python
version gains, for the same events in the same run:

* ``live``: a learner trained on ``WARM`` events, then timed on the next ``EVENTS``;
* ``snapshot``: the same, after one ``learners.checkpoint.dump`` of the live learner (what
  the worker does at every checkpoint);
* ``restored``: the learner read back from that checkpoint (``learners.checkpoint.load``).

Each row times the River model alone (``predict_proba_one`` + ``learn_one``) and the whole
``Learner.step``. Variants alternate, ``ROUNDS`` times; the table gives the best and the
median CPU time. On a shared machine wall/CPU time is noisy, so ``--callgrind`` counts
instructions instead (valgrind: setup runs uninstrumented, only the timed loop, run inside
``itertools.starmap``, is collected): one process per cell, exact to a fraction of a
percent. Run: ``python -m bench.interpreters [--callgrind] [python ...]``: each interpreter
runs this module as a subprocess (``--child``) and prints JSON; the parent writes the table
into ``docs/benchmarks.md`` between markers (see :func:`bench.report.splice`). Without
pythons it uses ``.venv/bin/python`` and any ``.venv-3.*/bin/python`` or
``$DRIFTLINE_BENCH_PYTHONS`` (colon-separated).
"""

import collections
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "StandardScaler \\| LogisticRegression":
        "preprocessing.StandardScaler() | linear_model.LogisticRegression()",
    "HoeffdingTreeClassifier": "tree.HoeffdingTreeClassifier()",
    "ARFClassifier (5 trees)": "forest.ARFClassifier(n_models=5, seed=1)",
}
WARM, EVENTS, ROUNDS = 2_000, 4_000, int(os.environ.get("ROUNDS", 5))
COUNTED = 1_000  # events measured under callgrind (counts are exact; it runs ~50x slower)
VARIANTS = ("live", "snapshot", "restored")
MARK = "interpreters"


def _events(n: int) -> list[tuple[dict[str, float], bool]]:
    from river.datasets import synth

    return [({f"x{k}": float(v) for k, v in x.items()}, bool(y))
            for x, y in itertools.islice(synth.Agrawal(seed=3), n)]


def _one(pipeline: str, variant: str, data: list[Any], whole: bool,
         counted: bool = False) -> float:
    from learners import checkpoint
    from learners.learner import Learner
    from schemas.models_file import ModelSpec

    learner = Learner.from_spec(ModelSpec(task="classification", pipeline=pipeline), 1000)
    for x, y in data[:WARM]:
        learner.step(x, y)
    if variant != "live":
        where = checkpoint.Where(group="g", topic="t", partition=0, model="m")
        blob = checkpoint.dump(learner, where, offset=WARM, key=b"k" * 32, now=0.0)
        if variant == "restored":
            learner = checkpoint.load(blob, where, key=b"k" * 32)[1]
    rest = data[WARM:]
    if counted:  # under callgrind: instrument from here, collect inside starmap only
        _instrument()
        if whole:
            collections.deque(itertools.starmap(learner.step, rest), maxlen=0)
        else:
            model = learner.model
            collections.deque(itertools.starmap(
                lambda x, y: (model.predict_proba_one(x), model.learn_one(x, y)), rest),
                maxlen=0)
        return 0.0
    start = time.process_time()
    if whole:
        step = learner.step
        for x, y in rest:
            step(x, y)
    else:
        model = learner.model
        for x, y in rest:
            model.predict_proba_one(x)
            model.learn_one(x, y)
    return (time.process_time() - start) / len(rest) * 1e6


def _instrument() -> None:
    """Ask callgrind to instrument this process from now on (and wait until it does)."""
    control = subprocess.Popen(["callgrind_control", "-i", "on", str(os.getpid())],
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while control.poll() is None and time.monotonic() < deadline:
        sum(range(1000))  # keep running: callgrind answers between basic blocks


def _count(python: str, name: str, variant: str, whole: bool) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
             "--toggle-collect=starmap_next", f"--callgrind-out-file={tmp}/out", python,
             "-m", "bench.interpreters", "--count", name, variant, str(int(whole))],
            cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip(), int(done.stderr.rsplit("Collected :", 1)[1].split()[0]) / COUNTED


def counted(python: str) -> dict[str, Any]:
    """Instructions per event (callgrind) for every cell, one valgrind process each (two at
    a time: counts do not depend on load)."""
    names = [n for n in MODELS if not os.environ.get("MODELS") or n in os.environ["MODELS"]]
    cells = [(name, variant, whole) for name in names for variant in VARIANTS
             for whole in (False, True)]
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda c: _count(python, *c), cells))
    out: dict[str, Any] = {"python": counts[0][0], "models": {}}
    for (name, variant, whole), (_, per_event) in zip(cells, counts, strict=True):
        out["models"].setdefault(name, {})[f"{'step' if whole else 'model'} {variant}"] = {
            "median": per_event, "best": per_event, "all": [per_event]}
    return out


def child() -> dict[str, Any]:
    """This interpreter's numbers (µs per event, per model, variant and level)."""
    data = _events(WARM + EVENTS)
    out: dict[str, Any] = {"python": platform.python_version(), "models": {}}
    for name, pipeline in MODELS.items():
        times: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            for variant in VARIANTS:
                for whole in (False, True):
                    key = f"{'step' if whole else 'model'} {variant}"
                    times.setdefault(key, []).append(_one(pipeline, variant, data, whole))
        out["models"][name] = {
            k: {"median": statistics.median(v), "best": min(v), "all": v}
            for k, v in times.items()}
    return out


def pythons(args: list[str]) -> list[str]:
    if args:
        return args
    found = [str(ROOT / ".venv" / "bin" / "python")]
    found += sorted(str(p / "bin" / "python") for p in ROOT.glob(".venv-3.*"))
    found += [p for p in os.environ.get("DRIFTLINE_BENCH_PYTHONS", "").split(":") if p]
    return [p for p in found if Path(p).exists()]


def render(results: list[dict[str, Any]], instructions: bool) -> str:
    unit = "k instructions" if instructions else "µs (best / median)"
    how = ("instruction counts (callgrind, one process per cell)" if instructions else
           f"CPU time, best and median of {ROUNDS} alternating rounds")
    lines = [
        f"Measured by `python -m bench.interpreters{' --callgrind' if instructions else ''}`"
        f" ({WARM:,} warm-up events, {COUNTED if instructions else EVENTS:,} measured, "
        f"Agrawal stream; {how}). "
        "`model`: River's predict_proba_one + learn_one alone; `step`: the whole "
        "`Learner.step`. `snapshot`: after one checkpoint of the live learner; `restored`: "
        "read back from that checkpoint. Per event.",
        "",
        f"| Python | model | level | live, {unit} | snapshot (vs live) | restored (vs live) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, m in r["models"].items():
            for level in ("model", "step"):
                live = m[f"{level} live"]
                cells = [_cell(live, instructions)]
                for v in ("snapshot", "restored"):
                    t = m[f"{level} {v}"]
                    cells.append(f"{_cell(t, instructions)} "
                                 f"({t['best'] / live['best'] - 1:+.1%})")
                lines.append(f"| {r['python']} | {name} | {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(t: dict[str, Any], instructions: bool) -> str:
    if instructions:
        return f"{t['best'] / 1000:,.1f}"
    return f"{t['best']:.1f} / {t['median']:.1f}"


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(child()))
        return
    if argv[:1] == ["--count"]:
        _, name, variant, whole = argv
        _one(MODELS[name], variant, _events(WARM + COUNTED), whole == "1", counted=True)
        print(platform.python_version())
        return
    instructions = argv[:1] == ["--callgrind"]
    argv = argv[1:] if instructions else argv
    results = []
    for python in pythons(argv):
        print(f"running {python}", file=sys.stderr)
        if instructions:
            results.append(counted(python))
        else:
            done = subprocess.run([python, "-m", "bench.interpreters", "--child"], cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout))
        print(f"  Python {results[-1]['python']} done", file=sys.stderr)
    table = render(results, instructions)
    print(table)
    from bench.report import splice

    mark = MARK + ("-callgrind" if instructions else "")
    title = "instructions" if instructions else "CPU time"
    path = ROOT / "docs" / "benchmarks.md"
    path.write_text(splice(path.read_text() if path.exists() else "", mark,
                           f"## Python versions, snapshots and restores ({title})\n\n"
                           + table))
    (ROOT / "bench" / "results" / f"{mark}.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
