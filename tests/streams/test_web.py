"""The worker's web server, run in-process (its views need neither Kafka nor Redis):
where it binds, what it serves, that every body serialises, and the token guard."""

import asyncio
import inspect
import logging
import math
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import orjson
import pytest
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from river import metrics as river_metrics

from learners.metric import make_metric
from learners.registry import ModelRegistry
from schemas.exceptions import ConfigError
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams import web
from streams.app import create_app
from streams.localservices.ports import free_port
from streams.processor import EventProcessor
from streams.records import Record
from streams.safe_json import dumps, metric_value

PIPELINES = {"classification": "preprocessing.StandardScaler() | linear_model.LogisticRegression()",
             "regression": "preprocessing.StandardScaler() | linear_model.LinearRegression()",
             "anomaly": "anomaly.HalfSpaceTrees(seed=3)"}


def accepted_metrics() -> list[str]:
    """Every name the models file accepts as a metric (what make_metric builds)."""
    names = []
    for name, _ in inspect.getmembers(river_metrics, inspect.isclass):
        try:
            make_metric(name)
        except (ConfigError, TypeError):
            continue
        names.append(name)
    return names


@asynccontextmanager
async def serving(tmp_path: Path, before_start: Callable[[object], None] = lambda app: None,
                  **settings: object) -> AsyncIterator[tuple[str, object]]:
    """The worker's app with only its web server started; yields (base URL, app)."""
    s = Settings(web_port=free_port(), data_dir=tmp_path, checkpoints=False, **settings)
    app = create_app(s, ModelRegistry(ModelsConfig.default(), 100))
    app.finalize()
    before_start(app)
    await app.web.start()
    try:
        yield f"http://127.0.0.1:{s.web_port}", app
    finally:
        await app.web.stop()


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return r.status, await r.read()


def listening_on(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_the_web_server_binds_localhost_unless_told_otherwise(tmp_path):
    assert Settings().web_host == "127.0.0.1"

    async def run() -> set[str]:
        async with serving(tmp_path) as (base, _):
            return listening_on(int(base.rsplit(":", 1)[1]))
    assert asyncio.run(run()) == {"127.0.0.1"}


def test_faust_views_are_off_and_answer_404_without_a_traceback(tmp_path, caplog):
    async def run() -> dict[str, tuple[int, bytes]]:
        async with serving(tmp_path) as (base, _):
            return {path: await get(base + path) for path in
                    ("/", "/router/x/", "/router/", "/table/", "/table/x/", "/graph/",
                     "/stats/", "/performance/", "/health")}
    with caplog.at_level(logging.DEBUG):
        answers = asyncio.run(run())
    assert {path: status for path, (status, _) in answers.items()} == {
        "/": 404, "/router/x/": 404, "/router/": 404, "/table/": 404, "/table/x/": 404,
        "/graph/": 404, "/stats/": 404, "/performance/": 404, "/health": 200}
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def learned_processor(task: str, metric: str, n: int = 30) -> EventProcessor:
    """A processor whose one model (``task``, ``metric``) has learned ``n`` events."""
    config = ModelsConfig.from_toml(
        f'[models.m]\ntask = "{task}"\npipeline = "{PIPELINES[task]}"\nmetric = "{metric}"\n')
    proc = EventProcessor(Settings(topic_prefix="w."), ModelRegistry(config, 100))
    proc.partition(0)  # assigned and started fresh
    records = []
    for i in range(n):
        x = {"a": math.sin(i), "b": float(i % 7)}
        label = {"classification": i % 3 == 0, "regression": 2.5 * x["a"] + x["b"],
                 "anomaly": i % 5 == 0}[task]
        records.append(Record("w.events", 0, i, None, orjson.dumps(
            {"event_id": f"e{i}", "model": "m", "features": x, "label": label}), None))
    proc.process(records, at="now")
    return proc


@pytest.mark.parametrize("metric", accepted_metrics())
def test_models_serialises_every_metric_the_models_file_accepts(metric):
    exercised = 0
    for task in PIPELINES:
        try:
            proc = learned_processor(task, metric)
        except ConfigError:  # the registry refuses a metric that does not fit the task
            continue
        learner = proc.partitions.get(0).learners["m"]
        exercised += learner.n_learned == 30  # every event learned, none a model_error
        body = orjson.loads(dumps(web.models_view(SimpleNamespace(processor=proc,
                                                                  checkpointer=None))))
        shown = body["m"]["0"]["metric"]
        assert shown["name"] == metric
        assert shown["value"] == orjson.loads(dumps(metric_value(learner.metric)))
    # Metrics of clustering or multi-output models fit none of the three tasks; every
    # other accepted metric learned from at least one task above.
    assert exercised or metric in {"AdjustedMutualInfo", "AdjustedRand", "Completeness",
                                   "FowlkesMallows", "Homogeneity", "MutualInfo",
                                   "NormalizedMutualInfo", "Rand", "Silhouette", "VBeta"}, (
        metric)


def test_models_answers_200_once_an_anomaly_model_has_scored(tmp_path):
    """The reported case: ROCAUC returns a numpy float that Faust's encoder refused."""
    proc = learned_processor("anomaly", "ROCAUC")

    async def run() -> tuple[int, bytes]:
        async with serving(tmp_path) as (base, app):
            app.scoring.processor = proc
            return await get(base + "/models")
    status, body = asyncio.run(run())
    assert status == 200
    value = orjson.loads(body)["m"]["0"]["metric"]["value"]
    assert value == float(proc.partitions.get(0).learners["m"].metric.get())
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401), ("Bearer wrong-token-of-the-same-len", 401), ("Basic c2VjcmV0", 401),
    ("Bearer the-web-token-0123456789", 200), ("bearer the-web-token-0123456789", 200)])
def test_a_guarded_view_needs_the_token_and_counts_refusals(tmp_path, authorization, status):
    token = "the-web-token-0123456789"
    registry = CollectorRegistry()
    calls = []

    def add_reset(app) -> None:
        guard = web.TokenGuard(app.scoring.settings.web_token, registry)

        @app.page("/reset")
        @guard
        async def reset(self: View, request: Request) -> Response:
            calls.append(1)
            return self.json({"reset": True})

    async def run() -> tuple[int, bytes]:
        async with serving(tmp_path, add_reset, web_token=SecretStr(token)) as (base, _):
            return await get(base + "/reset",
                             {"Authorization": authorization} if authorization else None)
    code, body = asyncio.run(run())
    assert code == status
    assert len(calls) == (status == 200)
    assert token.encode() not in body
    refused = registry.get_sample_value("driftline_web_unauthorized_total")
    assert refused == (1.0 if status == 401 else 0.0)


def test_no_token_configured_refuses_every_guarded_request():
    assert not web.token_matches("Bearer ", None)
    assert not web.token_matches("Bearer x", SecretStr(""))
    assert Settings().web_token is None


def test_every_secret_setting_is_a_secret_str():
    secret_words = ("key", "password", "token", "secret")
    fields = Settings.model_fields
    secret = {name for name in fields if any(w in name for w in secret_words)
              and not name.endswith("file")} | {"redis_url"}  # *_keyfile: a path
    assert {"checkpoint_key", "web_token", "redis_url"} <= secret
    for name in secret:
        assert "SecretStr" in str(fields[name].annotation), name
    shown = repr(Settings(checkpoint_key=SecretStr("k" * 32), web_token=SecretStr("t" * 20),
                          redis_url=SecretStr("redis://:pw@h:6379/0")))
    assert "k" * 32 not in shown and "t" * 20 not in shown and ":pw@" not in shown


@pytest.mark.parametrize("metric", ["ClassificationReport", "ROCAUC", "MacroF1", "Accuracy"])
def test_metrics_answers_200_whatever_the_metric_returns(tmp_path, metric):
    proc = learned_processor("anomaly" if metric == "ROCAUC" else "classification", metric)

    async def run() -> tuple[int, bytes]:
        async with serving(tmp_path) as (base, app):
            app.scoring.processor = proc
            return await get(base + "/metrics")
    status, body = asyncio.run(run())
    assert status == 200
    line = next(line for line in body.decode().splitlines()
                if line.startswith("driftline_model_metric{"))
    value = metric_value(proc.partitions.get(0).learners["m"].metric)
    shown = float(line.rsplit(" ", 1)[1])
    if isinstance(value, str):  # no single number: NaN, not a failed scrape
        assert math.isnan(shown)
    else:
        assert shown == pytest.approx(float(value))
