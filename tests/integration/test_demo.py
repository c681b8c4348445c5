"""`driftline demo` end to end: figures against what was sent, the PNG, nothing left behind."""

import os
import signal
import struct
import subprocess
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.demo.dataset import load, malformed
from streams.demo.summary import accuracy, detection
from streams.demo.tracker import AlertSeen
from streams.localservices.workers import DRIFTLINE
from tests.demo_reference import expected_run
from tests.helpers import service_processes, wait_for

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a demo that starts its own services under ``tmp_path/run``."""
    env = {**os.environ, "DRIFTLINE_RUN_DIR": str(tmp_path / "run"), **extra}
    for name in ("DRIFTLINE_KAFKA_BOOTSTRAP", "DRIFTLINE_REDIS_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


def left_behind(tmp_path: Path) -> list[int]:
    """Live java / redis-server processes of the demo's services, and its worker (whose
    environment names the demo's output folder)."""
    pids = service_processes(str(tmp_path / "run"))
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if str(tmp_path / "out").encode() in environ and state != "Z" and proc.name != str(
                os.getpid()):
            pids.append(int(proc.name))
    return pids


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_short_demo_reports_exactly_what_was_sent(tmp_path):
    n = 5000
    run = subprocess.run([DRIFTLINE, "demo", "--events", str(n), "--rate", "0", "--out",
                          str(tmp_path / "out")], env=demo_env(tmp_path), capture_output=True,
                         text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    png = tmp_path / "out" / "demo.png"
    assert f"picture: {png}" in run.stdout
    assert "sent 10,008/10,008" in run.stdout  # plain progress lines: stdout is no TTY
    assert left_behind(tmp_path) == []

    summary = orjson.loads((tmp_path / "out" / "summary.json").read_bytes())
    bad = Counter(m.reason for m in malformed(["reset", "keep"], binary=True))
    assert summary["events_sent"] == 2 * n + sum(bad.values())
    assert summary["predictions"] == {"reset": n, "keep": n}
    assert summary["malformed_sent"] == dict(bad)
    assert summary["deadletters"] == dict(bad)
    assert len(bad) >= 7  # every kind of mistake: json, encoding, schema, model, null, size...

    stream = load("sea", n, seed=42)
    expected = expected_run("sea", n)
    assert [d["row"] for d in summary["drifts"]] == list(stream.drifts) == [1666, 3333]
    window, within = summary["window"], summary["alert_window"]
    assert summary["labels_sent"] == 0 and summary["labels_matched"] == {}
    for k, report in enumerate(summary["drifts"]):
        for model, (alerts, correct) in expected.items():
            assert report["alerts"][model] <= 1  # one partition: one alert per change at most
            mine = [r for r in alerts if detection(AlertSeen(model, 0, r, r, "", 0, 0),
                                                  stream.drifts, within) == (k, r - report["row"])]
            assert report["alerts"][model] == len(mine)
            assert report["delay"][model] == (mine[0] - report["row"] if mine else None)
            assert report["before"][model] == accuracy(correct, report["row"] - window,
                                                       report["row"])
            assert report["after"][model] == accuracy(correct, report["row"],
                                                      report["row"] + window)
    # SEA's first change is caught by both models in a 5,000-event run.
    assert all(summary["drifts"][0]["alerts"][m] == 1 for m in expected)
    assert summary["accuracy"] == {m: accuracy(c, 0, n) for m, (_, c) in expected.items()}

    assert summary["png"] == str(png)
    assert png_size(png) == (1000, 480)
    assert 20_000 < png.stat().st_size < 500_000


def test_real_dataset_on_running_services(tmp_path, kafka, redis_url):
    env = demo_env(tmp_path, DRIFTLINE_KAFKA_BOOTSTRAP=kafka.bootstrap,
                   DRIFTLINE_REDIS_URL=redis_url)
    run = subprocess.run([DRIFTLINE, "demo", "--dataset", "segment", "--no-services",
                          "--rate", "0", "--out", str(tmp_path / "out")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = orjson.loads((tmp_path / "out" / "summary.json").read_bytes())
    # Image Segments: seven classes (one-vs-rest models), so no label can be "invalid".
    assert summary["rows"] == 2310 and summary["drifts"] == []
    assert summary["predictions"] == {"reset": 2310, "keep": 2310}
    bad = Counter(m.reason for m in malformed(["reset", "keep"], binary=False))
    assert summary["deadletters"] == summary["malformed_sent"] == dict(bad)
    expected = expected_run("segment", 2310)
    assert summary["accuracy"] == {m: accuracy(c, 0, 2310) for m, (_, c) in expected.items()}
    assert [a["row"] for a in summary["other_alerts"]] == sorted(
        r for alerts, _ in expected.values() for r in alerts)
    assert service_processes(str(tmp_path / "run")) == []  # it started none
    assert left_behind(tmp_path) == []


@pytest.mark.parametrize("moment", ["starting kafka", "streaming"])
def test_ctrl_c_stops_everything(tmp_path, moment):
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen([DRIFTLINE, "demo", "--rate", "300", "--out",
                                 str(tmp_path / "out")], env=demo_env(tmp_path),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        if moment == "starting kafka":
            wait_for(lambda: service_processes(str(tmp_path / "run")) or demo.poll() is not None,
                     120, "the demo's broker to start")
        else:
            wait_for(lambda: "sent" in log.read_text() or demo.poll() is not None, 240,
                     "the demo to stream")
        assert demo.poll() is None, log.read_text()[-3000:]
        assert left_behind(tmp_path) != []
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=90) == 130, log.read_text()[-3000:]
        assert "interrupted; everything it started is stopped" in log.read_text()
        assert left_behind(tmp_path) == []
    finally:
        demo.kill()
