"""Read the settings and the models file once, at start-up.

>>> load_models(None).models["default"].task
'classification'
"""

from pathlib import Path

from learners.registry import ModelRegistry
from schemas.exceptions import ConfigError
from schemas.models_file import ModelsConfig
from schemas.settings import Settings


def load_models(path: Path | None) -> ModelsConfig:
    """The models file at ``path``, or the built-in default when ``path`` is None."""
    if path is None:
        return ModelsConfig.default()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"models file {path}: {exc.strerror or exc}") from None
    return ModelsConfig.from_toml(text)


def load_registry(settings: Settings) -> ModelRegistry:
    """Every configured model, parsed and checked; a bad one stops start-up."""
    return ModelRegistry(load_models(settings.models), cooldown=settings.alert_cooldown)
