"""What the demo's shipped stream gives with River in-process: the reference the demo's
worker must equal (one partition keeps the stream's order)."""

from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from streams.demo.dataset import load


def expected_run(dataset: str, n: int) -> dict[str, tuple[list[int], list[bool]]]:
    """Per model: the rows River in-process raises alerts on, and each row's correctness."""
    stream = load(dataset, n, seed=42)
    registry = ModelRegistry(ModelsConfig.from_toml(stream.models_file()), cooldown=1000)
    out = {}
    for name in registry.names:
        learner = registry.new_learner(name)
        alerts, correct = [], []
        for i, (x, y) in enumerate(stream.rows):
            step = learner.step(x, y)
            correct.append(step.prediction == y)
            if step.signal is not None and step.signal.kind == "worse":
                alerts.append(i)
        out[name] = (alerts, correct)
    return out
