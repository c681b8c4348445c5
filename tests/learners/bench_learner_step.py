"""Micro-benchmark of ``Learner.step``'s hot path against the learner before hardening.

Not collected by pytest (timing is machine-dependent). Run:
``.venv/bin/python -m tests.learners.bench_learner_step [path/to/old/learner.py old/drift.py]``
The old modules default to the ones of the ``main`` branch (``git show``). Prints
µs per event (best of interleaved rounds) and the relative cost.
"""

import importlib.util
import itertools
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from river.datasets import synth

from learners.learner import Learner
from schemas.models_file import ModelSpec

CASES = [
    ("classification", "preprocessing.StandardScaler() | linear_model.LogisticRegression()", 3),
    ("classification", "preprocessing.StandardScaler() | linear_model.LogisticRegression()", 20),
    ("classification", "tree.HoeffdingTreeClassifier()", 3),
    ("regression", "preprocessing.StandardScaler() | linear_model.LinearRegression()", 3),
]
N = 20_000


def events(task: str, width: int) -> list[tuple[dict, object]]:
    rng = random.Random(3)
    out = []
    for x, y in itertools.islice(synth.SEA(seed=3), N):
        features = {f"x{k}": v for k, v in x.items()}
        for extra in range(len(features), width):
            features[f"f{extra}"] = rng.random()
        out.append((features, float(sum(x.values())) if task == "regression" else y))
    return out


def old_module(learner_path: Path, drift_path: Path) -> object:
    for name, path in (("old_drift", drift_path), ("old_learner", learner_path)):
        text = path.read_text().replace("from learners.drift import", "from old_drift import")
        tmp = Path(tempfile.mkdtemp()) / f"{name}.py"
        tmp.write_text(text)
        spec = importlib.util.spec_from_file_location(name, tmp)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules["old_learner"]


def run(make, data, checks: bool) -> float:
    learner = make()
    start = time.process_time()
    for x, y in data:
        if checks and learner.label_problem(y) is not None:
            continue
        learner.step(x, y)
    return (time.process_time() - start) / len(data) * 1e6


def main() -> None:
    if len(sys.argv) == 3:
        learner_path, drift_path = Path(sys.argv[1]), Path(sys.argv[2])
    else:
        tmp = Path(tempfile.mkdtemp())
        learner_path, drift_path = tmp / "l.py", tmp / "d.py"
        for path, name in ((learner_path, "learner"), (drift_path, "drift")):
            path.write_text(subprocess.run(["git", "show", f"main:learners/{name}.py"],
                                           capture_output=True, text=True, check=True).stdout)
    old = old_module(learner_path, drift_path)
    for task, pipeline, width in CASES:
        spec = ModelSpec(task=task, pipeline=pipeline)
        data = events(task, width)
        new_times, old_times = [], []
        for _ in range(7):  # interleaved, best of 7 (CPU time)
            new_times.append(run(lambda s=spec: Learner.from_spec(s, 1000), data, False))
            old_times.append(run(lambda s=spec: old.Learner.from_spec(s, 1000), data, True))
        new, before = min(new_times), min(old_times)
        print(f"{pipeline} ({width} features): before {before:.2f} us, now {new:.2f} us, "
              f"{(new / before - 1) * 100:+.1f}%")


if __name__ == "__main__":
    main()
