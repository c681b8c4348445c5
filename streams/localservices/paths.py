"""Where local-service material, caches and run state live.

All three can be moved with environment variables: ``DRIFTLINE_OPS_DIR``,
``DRIFTLINE_CACHE_DIR`` and ``DRIFTLINE_RUN_DIR``.

>>> ops_dir().joinpath("kafka", "pom.xml").is_file()
True
"""

import os
from pathlib import Path


def ops_dir() -> Path:
    """The repository's ``ops/`` folder (Kafka pom, config templates)."""
    override = os.environ.get("DRIFTLINE_OPS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "ops"


def cache_dir() -> Path:
    """Downloads kept between runs (Kafka's jars): ``~/.cache/driftline`` by default."""
    override = os.environ.get("DRIFTLINE_CACHE_DIR")
    base = Path(override) if override else Path.home() / ".cache" / "driftline"
    base.mkdir(parents=True, exist_ok=True)
    return base


def run_dir() -> Path:
    """State of ``driftline services up`` so that ``down`` works from any shell."""
    override = os.environ.get("DRIFTLINE_RUN_DIR")
    base = Path(override) if override else cache_dir() / "run"
    base.mkdir(parents=True, exist_ok=True)
    return base
