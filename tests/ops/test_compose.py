"""docker-compose.yml, ops/Dockerfile, ops/prometheus and ops/grafana agree with the worker.

No Docker engine is needed: the compose file is read, not run. Prometheus's files are
checked and their alerts unit-tested with the real ``promtool``.
"""

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer.main

from schemas.settings import Settings
from streams.cli import app as cli_app
from streams.localservices.kafka import kafka_version
from streams.localservices.process import require_executable
from streams.metrics import Metrics
from tests.ops import (
    ALERTS_YML,
    COMPOSE,
    DASHBOARD,
    DOCKERFILE,
    GRAFANA_DIR,
    PROMETHEUS_YML,
    ROOT,
    dashboard_exprs,
    promql_metric_names,
    read_yaml,
    rule_exprs,
)

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
_SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",),
                    "histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum")}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return read_yaml(COMPOSE)


def promtool() -> str:
    return require_executable("promtool", "install Debian's prometheus package "
                                          "(ops/bootstrap.sh does)")


def interpolate(value: object) -> str:
    """A compose value as the container sees it with nothing set on the host."""
    def default(match: re.Match[str]) -> str:
        assert match.group(2), f"${{{match.group(1)}}} has no default"
        return match.group(2)
    return _INTERPOLATION.sub(default, str(value))


def container_to_host(service: dict[str, Any], path: str) -> Path:
    """The host file behind a path inside ``service``'s container (via its bind mounts)."""
    target = PurePosixPath(path)
    for volume in service.get("volumes", []):
        source, mounted = volume.split(":")[:2]
        if source.startswith((".", "/")) and target.is_relative_to(mounted):
            return (ROOT / source / target.relative_to(mounted)).resolve()
    raise AssertionError(f"{path} is not under any bind mount of the service")


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    out = {}
    for spec in service.get("ports", []):
        host, container = str(spec).rsplit(":", 2)[-2:]
        out[int(container)] = int(host)
    return out


def settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The worker settings a container of ``service`` builds (image defaults included)."""
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("DRIFTLINE_")]:
            patch.delenv(name)
        for name, value in dockerfile_env().items():
            patch.setenv(name, value)
        for name, value in service.get("environment", {}).items():
            patch.setenv(name, interpolate(value))
        return Settings()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for line in text.splitlines() if (parts := line.strip().split(None, 1))]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args))
    return env


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- the compose file ------------------------------------------------------------------------
def test_compose_has_the_whole_system(compose):
    assert set(compose["services"]) == {"kafka", "redis", "worker", "producer", "prometheus",
                                        "grafana"}
    declared = set(compose.get("volumes", {}))
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"named volume {source} is not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"]


def test_images_are_the_versions_the_tests_prove(compose):
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    version = subprocess.run([promtool(), "--version"], capture_output=True, text=True,
                             check=True).stdout
    tested = re.search(r"version (\d+\.\d+\.\d+)", version).group(1)
    assert services["prometheus"]["image"] == f"prom/prometheus:v{tested}"
    assert services["worker"]["image"] == services["producer"]["image"]
    assert services["worker"]["build"] == services["producer"]["build"]


def test_redis_keeps_an_append_only_file(compose):
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])


def test_every_file_the_compose_file_references_exists(compose):
    services = compose["services"]
    for name in ("worker", "producer"):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{source} (bind mount) does not exist"
    prometheus = services["prometheus"]
    config = next(a.split("=", 1)[1] for a in prometheus["command"]
                  if a.startswith("--config.file="))
    assert container_to_host(prometheus, config) == PROMETHEUS_YML
    grafana = services["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert container_to_host(grafana, home) == DASHBOARD
    assert container_to_host(grafana, "/etc/grafana/provisioning") == GRAFANA_DIR / "provisioning"


def test_worker_environment_and_ports_agree_with_its_settings(compose, monkeypatch):
    services = compose["services"]
    worker = services["worker"]
    fields = set(Settings.model_fields)
    for service in ("worker", "producer"):
        for name in services[service]["environment"]:
            assert name.startswith("DRIFTLINE_"), name
            assert name.removeprefix("DRIFTLINE_").lower() in fields, f"{name} is no setting"
    for name in dockerfile_env():
        if name.startswith("DRIFTLINE_"):
            assert name.removeprefix("DRIFTLINE_").lower() in fields, f"{name} is no setting"
    settings = settings_of(worker, monkeypatch)

    # The checkpoint key comes from the host, with a placeholder for a local demo.
    key = str(worker["environment"]["DRIFTLINE_CHECKPOINT_KEY"])
    assert _INTERPOLATION.fullmatch(key).group(1) == "DRIFTLINE_CHECKPOINT_KEY"
    assert settings.checkpoints and settings.checkpoint_key.get_secret_value()
    # Kafka and Redis are the compose services, on the ports they listen on.
    host, port = settings.kafka_bootstrap.split(":")
    assert host == "kafka"
    kafka_env = services["kafka"]["environment"]
    assert f"PLAINTEXT://:{port}" in kafka_env["KAFKA_LISTENERS"].split(",")
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka:{port}"
    redis_url = settings.redis_url.get_secret_value()
    assert re.fullmatch(r"redis://redis:6379/\d+", redis_url), redis_url
    assert "--port" not in services["redis"]["command"]  # so redis listens on 6379
    # The web port: the setting, the published port, the health check, the image.
    port = settings.web_port
    assert port == Settings.model_fields["web_port"].default == 6066
    # Bound to 127.0.0.1 by default; the compose file and the image expose it explicitly.
    assert Settings.model_fields["web_host"].default == "127.0.0.1"
    assert worker["environment"]["DRIFTLINE_WEB_HOST"] == "0.0.0.0"
    assert dockerfile_env()["DRIFTLINE_WEB_HOST"] == "0.0.0.0"
    assert settings.web_host == "0.0.0.0"
    assert published(worker) == {port: port}
    assert f"http://127.0.0.1:{port}/ready" in " ".join(worker["healthcheck"]["test"])
    assert ("EXPOSE", str(port)) in dockerfile_instructions()
    scrape = read_yaml(PROMETHEUS_YML)["scrape_configs"]
    targets = [t for job in scrape for c in job["static_configs"] for t in c["targets"]]
    assert targets == [f"worker:{port}"]
    assert {job.get("metrics_path", "/metrics") for job in scrape} == {"/metrics"}
    # The producer writes where the worker reads.
    producer = settings_of(services["producer"], monkeypatch)
    assert producer.kafka_bootstrap == settings.kafka_bootstrap
    assert producer.topic("events") == settings.topic("events")


def test_services_start_in_order(compose):
    services = compose["services"]
    assert services["worker"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    # The worker creates the topics with their partitions before it is ready.
    assert services["producer"]["depends_on"] == {"worker": {"condition": "service_healthy"}}
    for name in ("kafka", "redis", "worker"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_producer_command_is_a_valid_cli_call(compose):
    producer, worker = compose["services"]["producer"], compose["services"]["worker"]
    cli = typer.main.get_command(cli_app)
    assert worker["command"] == ["worker"]
    name, *args = producer["command"]
    context = cli.commands[name].make_context(name, list(args))
    assert context.params["synthetic"] == "sea"
    assert 0 < context.params["drift_at"] < context.params["n"]
    assert context.params["rate"] > 0


# -- the image -----------------------------------------------------------------------------
def test_dockerfile_installs_the_package_the_readme_installs():
    project = pyproject()
    instructions = dockerfile_instructions()
    base = next(args for instruction, args in instructions if instruction == "FROM")
    python = re.fullmatch(r"python:(\d+)\.(\d+)(?:-\w+)?", base)
    assert python, base
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", project["project"]["requires-python"])
    assert tuple(map(int, python.groups())) >= tuple(map(int, minimum.groups()))
    # Everything the build of the project reads is copied into the image...
    copied = {Path(src).name for instruction, args in instructions if instruction == "COPY"
              for src in args.split()[:-1]}
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert {"pyproject.toml", project["project"]["readme"], *packages} <= copied
    # ...and installed as the project (the README's bootstrap installs '.[dev]').
    bootstrap = (ROOT / "ops" / "bootstrap.sh").read_text()
    assert re.search(r"pip install .*'\.\[dev\]'", bootstrap)
    installs = [shlex.split(args) for instruction, args in instructions
                if instruction == "RUN" and "pip install" in args]
    assert any(words[words.index("install") + 1] == "." for words in installs), installs
    assert project["project"]["name"] == "driftline"
    entrypoint = json.loads(next(a for i, a in instructions if i == "ENTRYPOINT"))
    assert entrypoint == ["driftline"]
    assert "driftline" in project["project"]["scripts"]
    assert json.loads(next(a for i, a in instructions if i == "CMD")) == ["worker"]
    assert next(a for i, a in instructions if i == "USER") != "root"


# -- Prometheus ----------------------------------------------------------------------------
def test_promtool_accepts_the_config_and_the_rules():
    config = subprocess.run([promtool(), "check", "config", str(PROMETHEUS_YML)],
                            capture_output=True, text=True, check=False)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout  # it followed rule_files to alerts.yml
    rules = subprocess.run([promtool(), "check", "rules", str(ALERTS_YML)],
                           capture_output=True, text=True, check=False)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "11 rules found" in rules.stdout


WORKER = {"job": "driftline", "instance": "worker:6066"}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in {**WORKER, **labels}.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def fires(alert: str, at: str, severity: str, *each: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert,
            "exp_alerts": [{"exp_labels": {**WORKER, **labels, "severity": severity}}
                           for labels in each]}


def silent(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


RULE_TESTS = [
    {   # The worker declares every model's counter at 0; an alert moves it to 1.
        "interval": "1m",
        "input_series": [
            series("driftline_drift_alerts_total", "0x5 1x30", model="fraud", signal="error"),
            series("driftline_drift_alerts_total", "0x5 1x30", model="churn", signal="error"),
        ],
        "alert_rule_test": [
            silent("DriftlineDriftDetected", "4m"),
            fires("DriftlineDriftDetected", "6m", "warning",
                  {"model": "fraud", "signal": "error"}, {"model": "churn", "signal": "error"}),
            silent("DriftlineDriftDetected", "25m"),
        ],
    },
    {   # Label-free alerts page as feature / prediction drift, not as error drift;
        # an incident pages once per change; promotions (placeholder) inform.
        "interval": "1m",
        "input_series": [
            series("driftline_drift_alerts_total", "0x5 1x30", model="fraud", signal="feature"),
            series("driftline_drift_alerts_total", "0x5 1x30", model="churn",
                   signal="prediction"),
            series("driftline_incidents_total", "0x5 1x30", model="fraud"),
            series("driftline_incidents_total", "0x35", model="churn"),
            series("driftline_promotions_total", "0x5 1x30", model="fraud"),
        ],
        "alert_rule_test": [
            silent("DriftlineDriftDetected", "6m"),
            silent("DriftlineFeatureDrift", "4m"),
            fires("DriftlineFeatureDrift", "6m", "warning",
                  {"model": "fraud", "signal": "feature"}),
            fires("DriftlinePredictionDrift", "6m", "warning",
                  {"model": "churn", "signal": "prediction"}),
            silent("DriftlineIncidentOpened", "4m"),
            fires("DriftlineIncidentOpened", "6m", "warning", {"model": "fraud"}),
            silent("DriftlineIncidentOpened", "25m"),
            fires("DriftlineChallengerPromoted", "6m", "info", {"model": "fraud"}),
        ],
    },
    {   # Checkpoints stop landing while the worker learns: stale after 120 s, for 2 minutes.
        "interval": "1m",
        "input_series": [
            series("driftline_checkpoint_age_seconds", "0+60x20", partition="0"),
            series("driftline_events_learned_total", "0+6000x20", model="default"),
        ],
        "alert_rule_test": [
            silent("DriftlineCheckpointStale", "4m"),
            fires("DriftlineCheckpointStale", "5m", "critical", {"partition": "0"}),
        ],
    },
    {   # An idle partition's checkpoint only gets older: not stale.
        "interval": "1m",
        "input_series": [
            series("driftline_checkpoint_age_seconds", "0+60x20", partition="0"),
            series("driftline_events_learned_total", "5000x20", model="default"),
        ],
        "alert_rule_test": [silent("DriftlineCheckpointStale", "15m")],
    },
    {   # 2 invalid_json dead letters per second for 5 minutes fire; 0.5 per second don't.
        "interval": "1m",
        "input_series": [
            series("driftline_deadletters_total", "0+120x20", reason="invalid_json"),
            series("driftline_deadletters_total", "0+30x20", reason="unknown_model"),
        ],
        "alert_rule_test": [
            silent("DriftlineDeadLettersRising", "5m"),
            fires("DriftlineDeadLettersRising", "11m", "warning", {"reason": "invalid_json"}),
        ],
    },
    {   # Lag above 10,000 and growing for 10 minutes fires; high but flat lag does not.
        "interval": "1m",
        "input_series": [
            series("driftline_consumer_lag", "20000+1000x30", partition="0"),
            series("driftline_consumer_lag", "50000x30", partition="1"),
        ],
        "alert_rule_test": [
            silent("DriftlineConsumerLagGrowing", "9m"),
            fires("DriftlineConsumerLagGrowing", "12m", "warning", {"partition": "0"}),
        ],
    },
    {   # A 100 MB checkpoint for 15 minutes fires; a 10 MB one does not.
        "interval": "1m",
        "input_series": [
            series("driftline_checkpoint_size_bytes", "100000000x30", model="big",
                   partition="0"),
            series("driftline_checkpoint_size_bytes", "10000000x30", model="small",
                   partition="0"),
        ],
        "alert_rule_test": [
            silent("DriftlineCheckpointLarge", "10m"),
            fires("DriftlineCheckpointLarge", "16m", "warning",
                  {"model": "big", "partition": "0"}),
        ],
    },
    {   # A gap of 200 events pages; a restore without one does not.
        "interval": "1m",
        "input_series": [
            series("driftline_offset_gap_events_total", "0x5 200x30", partition="0"),
            series("driftline_offset_gap_events_total", "0x35", partition="1"),
            series("driftline_checkpoint_fresh_starts_total", "0x5 1x30", model="default"),
        ],
        "alert_rule_test": [
            silent("DriftlineOffsetGap", "4m"),
            fires("DriftlineOffsetGap", "6m", "critical", {"partition": "0"}),
            silent("DriftlineCheckpointFreshStart", "4m"),
            fires("DriftlineCheckpointFreshStart", "6m", "critical", {"model": "default"}),
        ],
    },
]


def test_alert_rules_fire_when_they_should_and_only_then(tmp_path):
    rules = read_yaml(ALERTS_YML)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # their templates are checked by `check rules`
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    tested = {t["alertname"] for case in RULE_TESTS for t in case["alert_rule_test"]}
    assert tested == set(rule_exprs(rules))
    (tmp_path / "tests.json").write_text(json.dumps({
        "rule_files": ["rules.json"], "evaluation_interval": "1m", "tests": RULE_TESTS}))
    run = subprocess.run([promtool(), "test", "rules", "tests.json"], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


# -- names the rules and the dashboard use ----------------------------------------------
def worker_sample_names() -> set[str]:
    """Every series name the worker's registry can expose (labelled or not)."""
    names = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return names


def test_rules_and_dashboard_use_only_metrics_the_worker_has():
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in [*dashboard_exprs(dashboard), *rule_exprs(read_yaml(ALERTS_YML))
                              .values()] for name in promql_metric_names(expr)}
    assert used, "no metric names found"
    assert used <= worker_sample_names(), used - worker_sample_names()


def test_dashboard_has_the_panels_of_the_issue():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = {p["title"]: {n for t in p["targets"] for n in promql_metric_names(t["expr"])}
              for p in dashboard["panels"]}
    wanted = {
        "Throughput": {"driftline_events_consumed_total", "driftline_predictions_total"},
        "End-to-end latency": {"driftline_end_to_end_latency_seconds_bucket"},
        "Model metric": {"driftline_model_metric"},
        "Dead letters by reason": {"driftline_deadletters_total"},
        "Checkpoint age": {"driftline_checkpoint_age_seconds"},
        "Consumer lag": {"driftline_consumer_lag"},
    }
    for title, names in wanted.items():
        assert names <= panels.get(title, set()), title
    latency = [t["expr"] for p in dashboard["panels"] if p["title"] == "End-to-end latency"
               for t in p["targets"]]
    assert [re.match(r"histogram_quantile\(([\d.]+),", e).group(1) for e in latency] == [
        "0.5", "0.95", "0.99"]
    markers = [a for a in dashboard["annotations"]["list"] if "expr" in a]
    assert [promql_metric_names(a["expr"]) for a in markers] == [{"driftline_drift_alerts_total"}]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_grafana_provisioning_points_at_the_compose_prometheus_and_dashboards(compose):
    provisioning = GRAFANA_DIR / "provisioning"
    sources = [s for f in sorted((provisioning / "datasources").glob("*.yml"))
               for s in read_yaml(f)["datasources"]]
    assert [s["type"] for s in sources] == ["prometheus"]
    source = sources[0]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"]).groups()
    assert host == "prometheus" and int(port) in published(compose["services"][host])
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {str(d["uid"]) for d in _datasources(dashboard) if d.get("type") == "prometheus"}
    assert uids == {source["uid"]}
    providers = [p for f in sorted((provisioning / "dashboards").glob("*.yml"))
                 for p in read_yaml(f)["providers"]]
    grafana = compose["services"]["grafana"]
    folders = {container_to_host(grafana, p["options"]["path"]) for p in providers}
    assert folders == {DASHBOARD.parent}


def _datasources(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        own = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
        return own + [d for v in node.values() for d in _datasources(v)]
    if isinstance(node, list):
        return [d for item in node for d in _datasources(item)]
    return []
