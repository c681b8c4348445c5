"""Missing tools and taken ports end in one clear line and exit code 1."""

import socket

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
