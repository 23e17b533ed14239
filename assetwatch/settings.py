"""The one settings object: built once by the entry point, passed down explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ClientValue = str | int | float | bool
"""A librdkafka configuration value."""


class Settings(BaseSettings):
    """assetwatch configuration; every field is read from ``ASSETWATCH_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="ASSETWATCH_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
    )

    # --- broker -------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "ASSETWATCH_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS",
            "kafka_bootstrap_servers",
        ),
    )
    """Comma-separated host:port list of the cluster (plain KAFKA_BOOTSTRAP_SERVERS works too)."""
    broker_compat: Literal["none", "tansu"] = "none"
    """'tansu' derives end offsets from fetch high watermarks (its ListOffsets lags a batch)."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Security protocol for every Kafka client."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) when the protocol uses SASL."""
    kafka_sasl_username: str | None = None
    """SASL user name."""
    kafka_sasl_password: SecretStr | None = None
    """SASL password."""
    kafka_ssl_ca_location: Path | None = None
    """CA certificate file (PEM) the brokers' certificates are checked with; unset: system CAs."""
    kafka_ssl_certificate_location: Path | None = None
    """Client certificate file (PEM) for mutual TLS; needs the key too."""
    kafka_ssl_key_location: Path | None = None
    """Private key file (PEM) of the client certificate."""
    kafka_ssl_key_password: SecretStr | None = None
    """Password of the client key, when the key file is encrypted."""
    kafka_ssl_check_hostname: bool = True
    """Check that a broker's certificate names its host (off only for test clusters)."""

    # --- topics -------------------------------------------------------------------------
    topic_prefix: str = "assetwatch"
    """Prefix of every topic name; the app id of the worker group too."""
    partitions: int = Field(default=6, ge=1)
    """Partition count of the keyed topics (telemetry, predictions, state changelog)."""
    replication_factor: int = Field(default=1, ge=1)
    """Replication factor used when assetwatch creates topics."""

    # --- stream processing --------------------------------------------------------------
    profiles: tuple[str, ...] = ("cnc", "pump")
    """Asset-type profiles this worker serves (one registered model each)."""
    profiles_dir: Path | None = None
    """Extra folder of profile .toml files, read before the bundled ones."""
    batch_max_events: int = Field(default=2000, ge=1)
    """Micro-batch size bound: events scored with one model call."""
    batch_max_wait_s: float = Field(default=0.0, ge=0)
    """Seconds a batch waits for more readings once it has one; 0: what is queued goes at once."""
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=30_000)
    """Longest the broker may hold the worker's fetch once idle (10 ms while records come)."""
    # After each empty fetch the wait doubles up to this (agents/worker/fetch_wait.py).
    # Kafka's clients default to 500 ms. Lower: less latency, more idle fetch requests.
    scoring_process: bool = True
    """Fold features and score in helper processes, so consuming and scoring use more cores."""
    batches_in_flight: int = Field(default=2, ge=1, le=4)
    """Batches in the scoring helpers at once: with 2 one is scored while the other is acked."""
    scoring_processes: int = Field(default=1, ge=1, le=64)
    """Helper processes with scoring_process on; helper i scores the partitions p % count == i."""
    max_payload_bytes: int = Field(default=65_536, ge=64)
    """Readings larger than this go to dead letters as oversized."""
    late_grace_s: float = Field(default=30.0, ge=0)
    """Readings older than the asset's newest one by more than this are dead-lettered (late)."""
    # At most late_grace_s: a reading ahead by more would move its asset's watermark so far
    # that the asset's on-time readings after it were late.
    max_future_skew_s: float = Field(default=30.0, ge=0)
    """Readings stamped further than this ahead of the worker's clock are rejected."""
    # Catches 0, negative and seconds-for-milliseconds timestamps; raise it to replay history.
    max_past_age_s: float = Field(default=7 * 86_400.0, gt=0)
    """Readings stamped further than this behind the worker's clock are dead-lettered (too_old)."""
    max_id_length: int = Field(default=256, ge=1, le=65_536)
    """Longest asset_id or event_id accepted, in characters (longer: dead letter id_too_long)."""
    max_message_bytes: int = Field(default=1_000_000, ge=16_384, le=100_000_000)
    """librdkafka message.max.bytes of the output producer; dead letters are cut to fit it."""
    session_timeout_s: float = Field(default=6.0, gt=0)
    """Consumer group session timeout (small: the group join waits half of it)."""
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    """Consumer group heartbeat interval."""
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    """Port of the worker's /metrics, /health and /live HTTP endpoint (0 picks a free one)."""
    http_host: str = "127.0.0.1"
    """Interface the HTTP endpoints listen on (loopback; the container images set 0.0.0.0)."""
    http_threads: int = Field(default=8, ge=1, le=256)
    """Requests an HTTP endpoint serves at once; as many more wait, beyond that are refused."""
    http_timeout_s: float = Field(default=10.0, gt=0)
    """An HTTP connection idle (or sending its request) this long is closed."""
    advertised_url: str | None = None
    """URL other workers reach this one's HTTP endpoint at; default http://<host>:<metrics port>."""

    # --- asset alerts --------------------------------------------------------------------
    alert_k: int = Field(default=3, ge=1)
    """An asset alert is raised when k of the asset's last n readings are flagged."""
    alert_n: int = Field(default=5, ge=1)
    """The n of the k-of-n rule (readings per asset considered)."""
    alert_failure_threshold: float = Field(default=0.5, ge=0, le=1)
    """A reading is flagged when it is an anomaly or its failure probability reaches this."""
    alert_cooldown_s: float = Field(default=300.0, ge=0)
    """Event-time seconds after an asset alert before the same asset may raise again."""
    silence_after_s: float = Field(default=60.0, ge=0)
    """Alert when an asset that was reporting sends nothing for this long (0: off)."""
    silence_forget_s: float = Field(default=86_400.0, ge=0)
    """Stop watching an asset silent this long, so one-off ids are not kept forever (0: never)."""

    # --- label feedback ------------------------------------------------------------------
    feedback_port: int = Field(default=9109, ge=0, le=65535)
    """Port of the feedback service's /metrics, /performance, /health and /live (0: a free one)."""
    feedback_horizon_s: float = Field(default=3600.0, ge=0)
    """A label judges its asset's predictions from this many seconds before its outcome up to it."""
    feedback_threshold: float = Field(default=0.5, ge=0, le=1)
    """A prediction counts as flagged when is_anomaly or its failure probability reaches this."""
    feedback_buffer: int = Field(default=10_000, ge=1)
    """Predictions the feedback service keeps per asset for labels to judge (oldest go first)."""

    # --- drift ---------------------------------------------------------------------------
    drift_window: int = Field(default=3000, ge=10)
    """Rows per profile in the sliding window a drift divergence is computed over."""
    drift_step: int = Field(default=500, ge=1)
    """Rows between two drift evaluations."""
    drift_threshold: float = Field(default=0.2, gt=0, le=1)
    """Raise a drift alert when a Jensen-Shannon divergence (base 2) goes above this."""
    drift_clear_threshold: float = Field(default=0.1, ge=0, le=1)
    """Clear a raised drift alert when the divergence drops below this."""
    drift_cooldown_s: float = Field(default=600.0, ge=0)
    """Event-time seconds after a drift alert before the same feature may raise again."""

    # --- models -------------------------------------------------------------------------
    data_dir: Path = Path(".assetwatch")
    """Local folder for the embedded MLflow store, artifacts and fallback models."""
    mlflow_tracking_uri: str | None = None
    """MLflow tracking/registry URI; default: SQLite under data_dir."""
    mlflow_tracking_username: str | None = None
    """MLflow server user (HTTP basic auth); unset: MLflow's own MLFLOW_TRACKING_USERNAME."""
    mlflow_tracking_password: SecretStr | None = None
    """MLflow server password; unset: MLflow's own MLFLOW_TRACKING_PASSWORD."""
    model_alias: str = "champion"
    """Registry alias the workers serve."""
    model_name_prefix: str = "assetwatch"
    """Registered model name is '<prefix>-<profile>'."""
    model_check_interval_s: float = Field(default=30.0, gt=0)
    """Seconds between a worker's registry checks of the served alias (missed updates)."""
    shadow_scoring: bool = False
    """Also score every batch with the @challenger and publish to the shadow topic."""
    bootstrap_model: bool = True
    """Train and register a baseline when neither registry nor local artifact has a model."""
    train_assets: int = Field(default=12, ge=2)
    """Synthetic assets in the baseline training set."""
    train_hours: float = Field(default=2.0, gt=0)
    """Hours of 1 Hz synthetic telemetry per training asset."""
    train_trees: int = Field(default=100, ge=1)
    """Trees in each forest of the baseline models."""
    train_trials: int = Field(default=0, ge=0)
    """Optuna trials of the hyper-parameter search in training (0: fixed defaults, fast)."""
    seed: int = 7
    """Seed of the simulator and the trainers."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the worker and the CLI."""
    scoring_start_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds a new scoring helper may take to start (load its models) before it is given up."""
    scoring_helper_attempts: int = Field(default=3, ge=1)
    """Helper starts or batches that fail in a row before the worker exits non-zero."""
    scoring_restart_backoff_s: float = Field(default=1.0, ge=0)
    """Wait before the first respawn of a failed helper; doubles with each failure (max 30 s)."""
    health_stall_s: float = Field(default=60.0, gt=0)
    """/health is 503 after this long with lag but no batch done, or since an agent crash."""

    # --- output wire format ---------------------------------------------------------------
    output_format: Literal["avro", "json"] = "avro"
    """Outputs as Avro (single-object, or Confluent-framed with a registry) or as JSON lines."""
    schema_registry_url: str | None = None
    """Confluent Schema Registry URL: Avro outputs get its framing, subjects <topic>-value."""
    schema_registry_username: str | None = None
    """Schema Registry basic-auth user."""
    schema_registry_password: SecretStr | None = None
    """Schema Registry basic-auth password."""
    schema_registry_ca_file: Path | None = None
    """CA bundle that signs the Schema Registry's TLS certificate (default: system CAs)."""
    schema_registry_register: bool = True
    """Register the output schemas at start (and set BACKWARD); false: only look them up."""

    @model_validator(mode="after")
    def _security_is_complete(self) -> Settings:
        protocol, sasl = self.kafka_security_protocol, self.kafka_sasl_password
        if protocol.startswith("SASL_") and not (self.kafka_sasl_mechanism and sasl
                                                 and self.kafka_sasl_username):
            raise ValueError(f"{protocol} needs the kafka_sasl mechanism, username and password")
        files = (self.kafka_ssl_ca_location, self.kafka_ssl_certificate_location)
        if not protocol.endswith("SSL") and any((*files, self.kafka_ssl_key_location)):
            raise ValueError(f"kafka_ssl_* files are set but {protocol} does not use TLS")
        if (files[1] is None) != (self.kafka_ssl_key_location is None):
            raise ValueError("mutual TLS needs kafka_ssl_certificate_location and _key_location")
        return self

    @model_validator(mode="after")
    def _alert_window_is_consistent(self) -> Settings:
        if self.alert_k > self.alert_n:
            raise ValueError("alert_k must not exceed alert_n")
        return self

    @model_validator(mode="after")
    def _drift_is_consistent(self) -> Settings:
        if self.drift_step > self.drift_window:
            raise ValueError("drift_step must not exceed drift_window")
        if self.drift_clear_threshold > self.drift_threshold:
            raise ValueError("drift_clear_threshold must not exceed drift_threshold")
        return self

    @model_validator(mode="after")
    def _grace_fits_windows(self) -> Settings:
        if self.late_grace_s >= 300:
            raise ValueError("late_grace_s must be shorter than the 5-minute window")
        if self.max_future_skew_s > self.late_grace_s:
            raise ValueError("max_future_skew_s must not exceed late_grace_s (a reading ahead by "
                             "more would make its asset's on-time readings late)")
        return self

    @model_validator(mode="after")
    def _silence_is_consistent(self) -> Settings:
        if self.silence_forget_s and self.silence_forget_s <= self.silence_after_s:
            raise ValueError("silence_forget_s must exceed silence_after_s (or be 0)")
        return self

    # --- derived names ------------------------------------------------------------------
    @property
    def app_id(self) -> str:
        """The Faust app id, hence the workers' consumer group: the topic prefix."""
        return self.topic_prefix

    @property
    def telemetry_topic(self) -> str:
        """Readings in, keyed by asset id (``<prefix>.telemetry``)."""
        return f"{self.topic_prefix}.telemetry"

    @property
    def predictions_topic(self) -> str:
        """Scored readings out (``<prefix>.predictions``)."""
        return f"{self.topic_prefix}.predictions"

    @property
    def dead_letter_topic(self) -> str:
        """Records that could not be scored, with a reason (``<prefix>.dead-letters``)."""
        return f"{self.topic_prefix}.dead-letters"

    @property
    def labels_topic(self) -> str:
        """Maintenance labels the feedback service judges with (``<prefix>.labels``)."""
        return f"{self.topic_prefix}.labels"

    @property
    def drift_topic(self) -> str:
        """Drift alerts of the served models (``<prefix>.drift-alerts``)."""
        return f"{self.topic_prefix}.drift-alerts"

    @property
    def model_updates_topic(self) -> str:
        """Alias moves every worker follows to swap models (``<prefix>.model-updates``)."""
        return f"{self.topic_prefix}.model-updates"

    @property
    def shadow_predictions_topic(self) -> str:
        """Challenger predictions under shadow scoring (``<prefix>.shadow-predictions``)."""
        return f"{self.topic_prefix}.shadow-predictions"

    @property
    def asset_alerts_topic(self) -> str:
        """Per-asset failure-risk and silence alerts (``<prefix>.asset-alerts``)."""
        return f"{self.topic_prefix}.asset-alerts"

    @property
    def operator_alerts_topic(self) -> str:
        """What workers tell operators about models (``<prefix>.operator-alerts``)."""
        return f"{self.topic_prefix}.operator-alerts"

    @property
    def tracking_uri(self) -> str:
        """The MLflow URI: the configured one, else a SQLite store under ``data_dir``."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        """Artifact folder of the embedded MLflow store, under ``data_dir``."""
        return (self.data_dir / "mlartifacts").resolve()

    def model_name(self, profile: str) -> str:
        """Registered model name of ``profile``: ``<model_name_prefix>-<profile>``."""
        return f"{self.model_name_prefix}-{profile}"

    def kafka_client_config(self) -> dict[str, ClientValue]:
        """librdkafka-style connection settings shared by producers, consumers and admin."""
        config: dict[str, ClientValue] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol.endswith("SSL"):
            config.update(self._tls_client_config())
        return config

    def _tls_client_config(self) -> dict[str, ClientValue]:
        config: dict[str, ClientValue] = {"ssl.endpoint.identification.algorithm":
                                          "https" if self.kafka_ssl_check_hostname else "none"}
        files = {"ssl.ca.location": self.kafka_ssl_ca_location,
                 "ssl.certificate.location": self.kafka_ssl_certificate_location,
                 "ssl.key.location": self.kafka_ssl_key_location}
        config.update({key: str(path) for key, path in files.items() if path is not None})
        if self.kafka_ssl_key_password:
            config["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        return config
