"""Missing tools and taken ports end in one clear line and exit code 1."""

import os
import socket

import pytest

from tests.helpers import bin_dir_with, env_with_path, run_cli


def test_missing_java_is_one_line(tmp_path):
    env = env_with_path([tmp_path], DRIFTLINE_RUN_DIR=str(tmp_path / "run"),
                        DRIFTLINE_CACHE_DIR=str(tmp_path / "cache"))
    result = run_cli("services", "up", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "driftline: java not found on PATH: install a Java 17+ runtime "
        "(Debian: apt-get install -y openjdk-17-jre-headless)"]


def test_missing_mvn_is_one_line(tmp_path):
    env = env_with_path([bin_dir_with(tmp_path, "java")],
                        DRIFTLINE_RUN_DIR=str(tmp_path / "run"),
                        DRIFTLINE_CACHE_DIR=str(tmp_path / "cache"))
    result = run_cli("services", "up", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "driftline: mvn not found on PATH: install Apache Maven (Debian: apt-get install -y maven)"]


def test_taken_port_is_one_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = env_with_path([tmp_path], DRIFTLINE_RUN_DIR=str(tmp_path / "run"))
        result = run_cli("services", "up", "--kafka-port", str(port), env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"driftline: port {port} for kafka is already in use; choose another port"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unreachable_env(tmp_path, port: int) -> dict[str, str]:
    """Kafka and Redis both pointed at a loopback port nothing listens on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(DRIFTLINE_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
               DRIFTLINE_REDIS_URL=f"redis://127.0.0.1:{port}/0",
               DRIFTLINE_CHECKPOINT_KEY="cli-errors-test-checkpoint-key-of-32-bytes",
               DRIFTLINE_DATA_DIR=str(tmp_path / "data"))
    return env


@pytest.mark.parametrize("args", [("produce", "--synthetic", "sea", "--n", "5"),
                                  ("read", "predictions")])
def test_unreachable_kafka_is_one_line(tmp_path, args):
    port = _closed_port()
    result = run_cli(*args, env=_unreachable_env(tmp_path, port))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"driftline: cannot reach Kafka at 127.0.0.1:{port} with "
                               "DRIFTLINE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT ("), lines


def test_unreachable_redis_is_one_line(tmp_path):
    port = _closed_port()
    result = run_cli("checkpoints", "list", env=_unreachable_env(tmp_path, port))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"driftline: cannot reach Redis at redis://127.0.0.1:{port}: "), lines


@pytest.mark.parametrize(("args", "expected"), [
    (("--feedback", "{tmp}/missing.jsonl"),
     "driftline: cannot read {tmp}/missing.jsonl: No such file or directory"),
    (("--file", "{tmp}/missing.csv"),
     "driftline: cannot read {tmp}/missing.csv: No such file or directory"),
    (("--synthetic", "sea", "--label-delay", "5000:50"),
     "driftline: label delay 5000:50: need 0 <= MIN <= MAX"),
    (("--synthetic", "nope"),
     "driftline: unknown synthetic stream 'nope'; choose from sea, agrawal"),
])
def test_produce_arguments_are_checked_before_connecting(tmp_path, args, expected):
    """Kafka is unreachable: the argument's error, not the connection's, is what shows."""
    argv = [arg.format(tmp=tmp_path) for arg in args]
    result = run_cli("produce", *argv, env=_unreachable_env(tmp_path, _closed_port()))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [expected.format(tmp=tmp_path)]


def test_worker_with_a_taken_web_port_is_one_line(tmp_path):
    """A second worker on one host (same DRIFTLINE_WEB_PORT): one line before it connects
    to anything (was Faust's 40-line traceback)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "DRIFTLINE_WEB_PORT": str(port),
               "DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1", "DRIFTLINE_CHECKPOINTS": "false"}
        result = run_cli("worker", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"driftline: the web port 127.0.0.1:{port} cannot be used (Address already in use): "
        "another worker on this host? Give each worker its own DRIFTLINE_WEB_PORT"]


def test_produce_refuses_a_message_larger_than_the_worker_takes_before_connecting(tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(20)) + "\n"
                    + ",".join(["b" * 100_000] * 20) + "\n")
    env = {**os.environ, "DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}  # never reached
    result = run_cli("produce", "--file", str(wide), "--no-progress", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"driftline: {wide}: message 1 is 2000222 bytes; a message takes at most 1048576"]


@pytest.mark.parametrize(("command", "variable", "value", "why"), [
    (("worker",), "DRIFTLINE_CHECKPOINT_EVERY", "abc-s3cret",
     "Input should be a valid integer, unable to parse string as an integer"),
    (("worker", "--supervise"), "DRIFTLINE_SUPERVISE", "yes-s3cret",
     "Input should be a valid boolean, unable to interpret input"),
    (("read", "predictions"), "DRIFTLINE_LOG_LEVEL", "verbose-s3cret",
     "Input should be 'debug', 'info', 'warning', 'error' or 'critical'"),
])
def test_an_invalid_setting_is_one_line_naming_the_variable_not_its_value(
        tmp_path, command, variable, value, why):
    result = run_cli(*command, env=env_with_path([], **{variable: value}))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"driftline: invalid settings: {variable}: {why}"]


@pytest.mark.parametrize("url", ["redis://u:pa55word@[::1", "redis://u:pa55word@h:99999999/0",
                                 "redis://u:pa55word@h:1/0?socket_timeout=abc"])
def test_an_unreadable_redis_url_is_one_line_without_the_password(tmp_path, url):
    result = run_cli("checkpoints", "list", env=env_with_path(
        [], DRIFTLINE_REDIS_URL=url, DRIFTLINE_CHECKPOINT_KEY="k" * 40))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "driftline: DRIFTLINE_REDIS_URL is not a valid Redis URL (expected "
        "redis[s]://[[user]:password@]host[:port][/db][?option=value])"]
