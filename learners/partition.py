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
"""

from learners.learner import Learner
from learners.registry import ModelRegistry


class PartitionLearners:
    """Learners by model name for one partition, created on first use."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.learners: dict[str, Learner] = {}
        self.offset = -1

    def learner(self, name: str) -> Learner:
        """The learner of model ``name`` on this partition (fresh if never seen)."""
        learner = self.learners.get(name)
        if learner is None:
            learner = self.learners[name] = self.registry.new_learner(name)
        return learner

    def seen(self, offset: int) -> bool:
        """True when the state already reflects the event at ``offset``."""
        return offset <= self.offset

    def advance(self, offset: int) -> None:
        """Record that the event at ``offset`` has been applied."""
        self.offset = offset
