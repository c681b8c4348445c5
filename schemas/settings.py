"""Driftline's settings: one frozen object built from ``DRIFTLINE_*`` variables.

Build it once at start-up and pass it in; nothing reads the environment
behind its back.

>>> s = Settings(kafka_bootstrap="k:9092", topic_prefix="demo.")
>>> s.topic("events"), s.topic("deadletter")
('demo.events', 'demo.deadletter')
>>> s.checkpoint_key is None
True
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.constants import REDIS_PREFIX


class Settings(BaseSettings):
    """All tunables of a Driftline worker, read from ``DRIFTLINE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"),
                                 description="Redis URL for checkpoints (may hold a password).")
    topic_prefix: str = Field("driftline.", description="Prefix of the four topics.")
    app_id: str = Field("driftline", description="Faust app id = Kafka consumer group.")
    models: Path | None = Field(None, description="Models file (TOML); built-in default if unset.")
    data_dir: Path = Field(Path(".driftline"), description="Worker's local files (Faust datadir).")
    topic_partitions: int = Field(4, gt=0, description="Partitions of topics the worker creates.")
    topic_replication: int = Field(1, gt=0, description="Replication of topics it creates.")
    max_fetch_bytes: int = Field(4 * 1024 * 1024, gt=0,
                                 description="Largest message fetched or produced; larger "
                                             "events than the 1 MiB limit must still arrive "
                                             "to be dead-lettered.")
    instance_id: str | None = Field(
        None, description="Static group membership id (e.g. the pod name): a restarted "
                          "worker takes its partitions back without a rebalance.")
    supervise: bool = Field(
        False, description="driftline worker --supervise: a parent that has done the "
                           "imports forks the worker, and a new one at once when it is "
                           "killed or crashes.")
    session_timeout: float = Field(10.0, gt=0, description="Consumer group session timeout (s).")
    heartbeat_interval: float = Field(3.0, gt=0, description="Consumer heartbeat interval (s).")
    commit_interval: float = Field(1.0, gt=0, description="Seconds between offset commits.")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of /metrics, /health, /ready.")
    web_host: str = Field("127.0.0.1",
                          description="Interface the web server binds (0.0.0.0 exposes it).")
    web_token: SecretStr | None = Field(
        None, description="Bearer token that HTTP requests changing state must carry.")
    output_max_bytes: int = Field(1024 * 1024, gt=0,
                                  description="Largest prediction published; a larger one "
                                              "becomes an output_too_large dead letter. Keep "
                                              "it below the topics' max.message.bytes.")
    deadletter_max_bytes: int = Field(512 * 1024, gt=0,
                                      description="Dead-letter payloads are cut to this prefix.")
    alert_cooldown: int = Field(1_000, ge=0,
                                description="Events after an alert during which ADWIN's "
                                            "repeated detections of the same change are muted.")
    batch_max: int = Field(1000, gt=0, description="Most events handled per batch.")
    batch_within: float = Field(0.005, gt=0, description="Seconds to wait to fill a batch.")
    batch_max_seconds: float = Field(
        0.5, gt=0, description="Most seconds of model work per batch: a slow model never "
                               "keeps the worker from its group or web server for longer; "
                               "the rest of the fetched events comes next, in order.")
    metadata_max_age: float = Field(
        5.0, gt=0, description="Seconds between metadata refreshes: partitions added to the "
                               "events topic are consumed within about this long.")
    checkpoints: bool = Field(True, description="Checkpoint model state to Redis.")
    checkpoint_key: SecretStr | None = Field(None, description="HMAC key for checkpoints.")
    checkpoint_unverifiable: Literal["stop", "fresh"] = Field(
        "stop", description="When none of a model's stored versions verifies: stop the "
                            "worker (default) or start that model afresh.")
    checkpoint_restore_timeout: float = Field(
        60.0, gt=0, description="How long an assignment waits for Redis before giving up.")
    checkpoint_every: int = Field(1_000, gt=0, description="Checkpoint every N learned events.")
    checkpoint_interval: float = Field(5.0, gt=0, description="... or every T seconds.")
    checkpoint_keep: int = Field(5, gt=0, description="Checkpoint versions kept per model.")
    checkpoint_snapshot: Literal["auto", "fork", "inline"] = Field(
        "auto", description="Serialise snapshots in a forked child (the event loop and the "
                            "live learners untouched; Linux), inline on the loop, or `auto`: "
                            "forked once a partition's checkpoint is large (256 KiB stored), "
                            "inline while it is small (a fork costs more than a small pickle).")
    checkpoint_snapshot_timeout: float = Field(
        120.0, gt=0, description="Seconds a forked snapshot child may take before it is "
                                 "killed and the snapshot counted as failed (retried at "
                                 "the next checkpoint).")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects (Kafka's security.protocol).")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism for SASL_PLAINTEXT / SASL_SSL.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) that signed the "
                                                            "brokers' certificates.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM, mTLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (PEM, mTLS).")
    redis_username: str | None = Field(None, description="Redis ACL user (the URL's wins).")
    redis_password: SecretStr | None = Field(None, description="Redis password (the URL's wins).")
    redis_ssl_cafile: Path | None = Field(None, description="CA (PEM) of a rediss:// server.")
    redis_ssl_certfile: Path | None = Field(None, description="Client certificate for rediss://.")
    redis_ssl_keyfile: Path | None = Field(None, description="Client key for rediss://.")
    redis_sentinels: str | None = Field(None, description="Sentinels as host:port,host:port "
                                                          "(or use a redis+sentinel:// URL).")
    redis_sentinel_service: str | None = Field(None, description="Sentinel's master name.")
    redis_prefix: str = Field(REDIS_PREFIX, min_length=1,
                              description="First part of every Redis key, so several "
                                          "deployments can share one Redis.")

    incidents: bool = Field(True, description="Roll alerts into incidents on "
                                              "<prefix>incidents (a Faust agent and table).")

    feedback_grace: float = Field(60.0, ge=0,
                                  description="Seconds of event time a feedback that came "
                                              "before its event waits for it.")
    log_json: bool = Field(False, description="Log one JSON object per line.")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="Log level of the worker (any case).")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def topic(self, name: str) -> str:
        """The full name of one of the topics: events, predictions, alerts, deadletter."""
        return f"{self.topic_prefix}{name}"


def settings_problem(exc: ValidationError) -> str:
    """One line naming each ``DRIFTLINE_*`` variable that is wrong and why, without the
    values (a secret may be among them).

    >>> import os
    >>> os.environ["DRIFTLINE_TOPIC_PARTITIONS"] = "0"
    >>> try:
    ...     Settings()
    ... except ValidationError as exc:
    ...     print(settings_problem(exc))
    invalid settings: DRIFTLINE_TOPIC_PARTITIONS: Input should be greater than 0
    >>> del os.environ["DRIFTLINE_TOPIC_PARTITIONS"]
    """
    problems = [f"DRIFTLINE_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)]
    return "invalid settings: " + "; ".join(problems)
