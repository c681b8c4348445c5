"""A real Prometheus, configured from ops/prometheus, scrapes a real worker fed a drifting
stream: the drift alert fires, throughput and latency series are there, every query of the
Grafana dashboard answers, and every metric the rules and the dashboard name is in the
worker's live ``/metrics``."""

import json
import math
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.localservices.ports import free_port
from streams.localservices.process import ManagedProcess, require_executable
from streams.sources import synthetic_events
from tests.helpers import wait_for
from tests.kafka_tools import create_topic, produce
from tests.ops import ALERTS_YML, DASHBOARD, PROMETHEUS_YML, dashboard_exprs, promql_metric_names

DRIFT_ALERT = "DriftlineDriftDetected"
MALFORMED = 3
CHUNK = 2_000


class Prometheus:
    """A prometheus process on a free loopback port, with its HTTP API."""

    def __init__(self, proc: ManagedProcess, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def get(self, path: str, **params: str) -> Any:
        """``data`` of an API answer, or None while the server does not answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as answer:
                body = json.loads(answer.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now."""
        data = self.get("/api/v1/query", query=expr)
        assert data is not None and data["resultType"] == "vector", data
        return data["result"]

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """The series ``expr`` gives between ``start`` and ``end``, as Grafana asks for them."""
        data = self.get("/api/v1/query_range", query=expr, start=str(start), end=str(end),
                        step="1")
        assert data is not None and data["resultType"] == "matrix", data
        return data["result"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


def config_for(tmp_path: Path, target: str) -> Path:
    """ops/prometheus/prometheus.yml scraping ``target`` and evaluating rules every second."""
    text = PROMETHEUS_YML.read_text()
    text, intervals = re.subn(r"(?m)^(\s*(?:scrape|evaluation)_interval:\s*)\S+", r"\g<1>1s",
                              text)
    text, targets = re.subn(r"\bworker:\d+\b", target, text)
    assert (intervals, targets) == (2, 1), "ops/prometheus/prometheus.yml changed shape"
    folder = tmp_path / "prometheus"
    folder.mkdir()
    shutil.copy(ALERTS_YML, folder / ALERTS_YML.name)  # rule_files are relative to the config
    config = folder / "prometheus.yml"
    config.write_text(text)
    return config


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """Start Debian's prometheus scraping a target; stopped (and gone) at teardown."""
    binary = require_executable("prometheus", "install Debian's prometheus package "
                                              "(ops/bootstrap.sh does)")
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        config = config_for(tmp_path, target)
        port = free_port()
        log = tmp_path / "prometheus.log"
        proc = ManagedProcess.spawn(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            log_path=log, die_with_parent=True, cwd=config.parent)
        prometheus = Prometheus(proc, f"http://127.0.0.1:{port}", log)
        started.append(prometheus)
        wait_for(lambda: prometheus.ready() or not proc.alive(), 60, "prometheus to be ready")
        assert proc.alive(), log.read_text()[-3000:]
        return prometheus

    yield start
    for prometheus in started:
        prometheus.proc.stop(timeout=15)
        assert not prometheus.proc.alive()


def http_ok(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read() if answer.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def messages() -> list[tuple[bytes, bytes]]:
    """A few malformed events (so dead letters have a series), then SEA drifting at 10,000."""
    out = [(f"bad-{i}".encode(), b"not json") for i in range(MALFORMED)]
    for event in synthetic_events("sea", 20_000, drift_at=10_000, seed=42, model="default"):
        out.append((event["event_id"].encode(), orjson.dumps(event)))
    return out


def as_grafana_would(expr: str) -> str:
    """A dashboard query with Grafana's interval variables filled in."""
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")


def test_prometheus_fires_drift_alert_on_a_live_worker(kafka, topic_prefix, start_worker,
                                                       start_prometheus):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    worker = start_worker()
    web = f"http://127.0.0.1:{worker.env['DRIFTLINE_WEB_PORT']}"
    prometheus = start_prometheus(f"127.0.0.1:{worker.env['DRIFTLINE_WEB_PORT']}")

    def target_up() -> bool:
        targets = prometheus.get("/api/v1/targets")
        return bool(targets) and [t["health"] for t in targets["activeTargets"]] == ["up"]

    def consumed_seen() -> float:
        return sum(float(r["value"][1])
                   for r in prometheus.query("driftline_events_consumed_total"))

    wait_for(target_up, 60, "prometheus to scrape the worker")
    wait_for(lambda: http_ok(f"{web}/ready") or not worker.alive(), 90, "the worker to be ready")
    assert worker.alive(), worker.log()[-3000:]
    # In chunks, each seen by Prometheus before the next: a series born with its final
    # value (20,000 events can take less than one scrape interval) would show no rate.
    sent = messages()
    started = time.time()
    for end in range(CHUNK, len(sent) + CHUNK, CHUNK):
        produce(kafka.bootstrap, f"{topic_prefix}events", sent[end - CHUNK:end])
        wait_for(lambda end=end: consumed_seen() >= min(end, len(sent)), 60,
                 f"prometheus to see {end} events consumed")

    def drift_alerts() -> list[dict[str, Any]]:
        alerts = prometheus.get("/api/v1/alerts") or {"alerts": []}
        return [a for a in alerts["alerts"]
                if a["labels"]["alertname"] == DRIFT_ALERT and a["state"] == "firing"]

    firing = wait_for(drift_alerts, 90, "the drift alert to fire")
    assert worker.alive(), worker.log()[-3000:]
    assert [(a["labels"]["model"], a["labels"]["signal"], a["labels"]["job"]) for a in firing] \
        == [("default", "error", "driftline")]
    # Prometheus saw every event go through, and has throughput and latency series.
    assert consumed_seen() == len(sent) == 20_000 + MALFORMED

    def answered(expr: str) -> list[dict[str, Any]]:
        """``expr``'s result once it has one (a rate needs two scrapes of a new series)."""
        return wait_for(lambda: prometheus.query(expr), 30, f"data for {expr}")

    throughput = answered("sum(rate(driftline_events_consumed_total[1m]))")
    assert len(throughput) == 1 and float(throughput[0]["value"][1]) > 0
    predictions = answered("sum by (model) (rate(driftline_predictions_total[1m]))")
    assert {r["metric"]["model"]: float(r["value"][1]) > 0 for r in predictions} == {
        "default": True}
    for quantile in ("0.5", "0.99"):
        latency = answered(f"histogram_quantile({quantile}, sum by (le) "
                           f"(rate(driftline_end_to_end_latency_seconds_bucket[1m])))")
        assert len(latency) == 1
        seconds = float(latency[0]["value"][1])
        assert math.isfinite(seconds) and 0 <= seconds <= 10, seconds
    # Every rule Prometheus loaded evaluates without error; every dashboard query (panels
    # and drift markers) has data over the run, as Grafana would show it.
    rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
    rule_file = (Path(__file__).parents[2] / "ops/prometheus/alerts.yml").read_text()
    assert len(rules) == rule_file.count("- alert:") == 11
    assert {r["name"]: (r["health"], r.get("lastError", "")) for r in rules} == {
        r["name"]: ("ok", "") for r in rules}
    dashboard = dashboard_exprs(json.loads(DASHBOARD.read_text()))

    def over_the_run(expr: str) -> list[dict[str, Any]]:
        return prometheus.query_range(as_grafana_would(expr), started - 5, time.time())

    def unanswered() -> list[str]:
        return [e for e in dashboard if not over_the_run(e)]

    try:
        wait_for(lambda: not unanswered(), 60, "every dashboard query to return data")
    except AssertionError:
        raise AssertionError(f"dashboard queries without data: {unanswered()}") from None
    markers = json.loads(DASHBOARD.read_text())["annotations"]["list"]
    drift = next(a["expr"] for a in markers if "expr" in a)
    assert {(r["metric"]["model"], r["metric"]["signal"]) for r in over_the_run(drift)} == {
        ("default", "error")}
    # Every metric the rules and the dashboard name is in the live scrape, and in Prometheus.
    used = {name for expr in [*dashboard, *(r["query"] for r in rules)]
            for name in promql_metric_names(expr)}
    scrape = http_ok(f"{web}/metrics")
    assert scrape is not None
    exposed = {sample.name for family in text_string_to_metric_families(scrape.decode())
               for sample in family.samples}
    assert used, "no metric names parsed out of the rules and the dashboard"
    assert used <= exposed, f"not in the worker's /metrics: {sorted(used - exposed)}"
    stored = set(prometheus.get("/api/v1/label/__name__/values"))
    assert used <= stored, f"not scraped by prometheus: {sorted(used - stored)}"
