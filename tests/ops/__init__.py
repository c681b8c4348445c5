"""Reading the deployment material: docker-compose.yml, ops/prometheus, ops/grafana."""

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "ops" / "Dockerfile"
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_YML = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = ROOT / "ops" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "driftline.json"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                       re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                       "group_right", "offset", "bool", "inf", "nan"})


def load_yaml(text: str) -> Any:
    r"""Parse YAML (safe loader: plain data only).

    >>> load_yaml('a: 1\nb:\n  - x\n  - k: "v"\n')
    {'a': 1, 'b': ['x', {'k': 'v'}]}
    """
    return yaml.safe_load(text)


def read_yaml(path: Path) -> Any:
    """:func:`load_yaml` of a file."""
    return load_yaml(path.read_text())


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (as exposed: ``_total``, ``_bucket``...).

    Label matchers, ranges, grouping clauses, functions, keywords and numbers are not
    names; Grafana's ``$__rate_interval`` sits inside a range and is skipped with it.

    >>> sorted(promql_metric_names(
    ...     'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y z"}[$__rate_interval])))'
    ...     ' > 1e3 and on (job) b_total offset 10m or {__name__="c"}'))
    ['a_bucket', 'b_total', 'c']
    """
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    text = _STRING.sub(" ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    for match in _WORD.finditer(text):
        word, before = match.group(), text[match.start() - 1] if match.start() else " "
        if word.lower() in _KEYWORDS or before.isdigit() or before in ".$":
            continue
        if text[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        names.add(word)
    return names


def dashboard_exprs(node: Any) -> list[str]:
    """Every ``expr`` of a Grafana dashboard: panel targets and annotation queries."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for key, value in node.items() if key != "expr"
                        for e in dashboard_exprs(value)]
    if isinstance(node, list):
        return [e for item in node for e in dashboard_exprs(item)]
    return []


def rule_exprs(rules: Any) -> dict[str, str]:
    """Alert name (or recorded name) -> expression, from a parsed rules file."""
    return {rule.get("alert") or rule["record"]: rule["expr"]
            for group in rules["groups"] for rule in group["rules"]}
