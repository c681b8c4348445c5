"""The learners of one Kafka partition, and how far into it they have got.

Each (model, partition) has its own learner, fed strictly in offset order.
``offset`` is the last offset applied; after a restore, ``seen(offset)``
tells which replayed events the restored state already reflects.

>>> from learners.registry import ModelRegistry
>>> from schemas.models_file import ModelsConfig
>>> part = PartitionLearners(ModelRegistry(ModelsConfig.default(), cooldown=100))
>>> part.seen(0), part.learner("default").n_learned
(False, 0)
>>> part.advance(0); part.seen(0), part.seen(1)
(True, False)
>>> part.restore({"default": (41, part.registry.new_learner("default"))})
>>> part.offset, part.model_seen("default", 41), part.model_seen("default", 42)
(41, True, False)
"""

from learners.learner import Learner
from learners.registry import ModelRegistry


class PartitionLearners:
    """Learners by model name for one partition, created on first use."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.learners: dict[str, Learner] = {}
        self.offset = -1
        self.floors: dict[str, int] = {}

    def learner(self, name: str) -> Learner:
        """The learner of model ``name`` on this partition (fresh if never seen)."""
        learner = self.learners.get(name)
        if learner is None:
            learner = self.learners[name] = self.registry.new_learner(name)
        return learner

    def seen(self, offset: int) -> bool:
        """True when the state already reflects the event at ``offset``."""
        return offset <= self.offset

    def model_seen(self, name: str, offset: int) -> bool:
        """True when model ``name``'s restored state already reflects ``offset``.

        Models can be restored to different offsets (an older version is used when
        the newest fails to verify), so replayed events are judged per model.
        """
        return offset <= self.floors.get(name, -1)

    def advance(self, offset: int) -> None:
        """Record that the event at ``offset`` has been applied."""
        self.offset = offset

    def restore(self, restored: dict[str, tuple[int, Learner]]) -> None:
        """Adopt checkpointed learners, each reflecting events up to its offset."""
        self.learners = {name: learner for name, (_, learner) in restored.items()}
        self.floors = {name: offset for name, (offset, _) in restored.items()}
        self.offset = min(self.floors.values(), default=-1)

    def learned(self) -> int:
        """Events learned by all this partition's learners together."""
        return sum(learner.n_learned for learner in self.learners.values())
