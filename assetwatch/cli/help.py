"""What ``assetwatch VERB --help`` says: a description per verb, defaults, the settings it reads.

Kept apart from the argument definitions in :mod:`assetwatch.cli.parser`, so that adding a verb
there and describing it here are two small edits; a unit test fails for a verb left undescribed.
"""

from __future__ import annotations

import argparse
from importlib import metadata
from typing import Any

DESCRIPTIONS: dict[str, str] = {
    "demo": "Start an embedded broker, a local MLflow registry, a baseline model, a worker and "
            "the simulator, and show the live predictions and alerts.",
    "broker": "Run the embedded tansu broker on a loopback port and create assetwatch's "
              "topics, for other shells to point ASSETWATCH_KAFKA_BOOTSTRAP_SERVERS at.",
    "worker": "Consume telemetry, keep per-asset features and baselines, score with the "
              "registry's models, publish predictions, dead letters and alerts; serve "
              "/metrics, /health, /live and the query API (/assets, /assets/{id}, /models).",
    "simulate": "Publish synthetic telemetry of a fleet (some assets degrading to failure), "
                "with progress on stderr. Ctrl-C stops it: flushed, summary printed, "
                "status 0.",
    "replay": "Publish a readings file (CSV with , ; or tab, SKAB's format, Parquet) of one "
              "asset, streamed in chunks at bounded memory, with progress on stderr. Ctrl-C "
              "stops it: flushed, summary printed, status 0.",
    "evaluate": "Backtest labelled files through a real worker and report per-file and pooled "
                "precision, recall and detection delay.",
    "consume": "Print a topic's records (every assetwatch contract, single-object, Confluent or "
               "JSON framed) as JSON lines with key, partition, offset, timestamp and headers; "
               "from the beginning or --from-end, until idle or --follow until Ctrl-C.",
    "dlq": "List dead letters by reason, or replay their original bytes to the telemetry topic.",
    "train": "Train models per profile (synthetic or labelled files) and register them as "
             "the challenger; --promote serves them right away.",
    "promote": "Point the served alias at a version after it loads and passes the serving "
               "checks; workers swap it in without a restart.",
    "rollback": "Serve the previously served version again.",
    "label": "Publish a maintenance outcome (failure or not) to the labels topic.",
    "reset-baseline": "Make an asset learn its normal afresh, e.g. after maintenance.",
    "feedback": "Join labels to predictions and serve precision and recall on /performance "
                "and /metrics.",
}

BROKER = ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_*", "KAFKA_SSL_*",
          "TOPIC_PREFIX")
REGISTRY = ("MLFLOW_TRACKING_URI", "MODEL_ALIAS", "MODEL_NAME_PREFIX", "DATA_DIR")
SETTINGS: dict[str, tuple[str, ...]] = {
    "demo": ("DATA_DIR", "PROFILES"),
    "broker": ("PARTITIONS", "TOPIC_PREFIX"),
    "worker": (*BROKER, *REGISTRY, "PROFILES", "METRICS_PORT", "HTTP_HOST", "ADVERTISED_URL",
               "BATCH_MAX_EVENTS", "SCORING_PROCESS"),
    "simulate": (*BROKER, "SEED"),
    "replay": (*BROKER, "PROFILES_DIR"),
    "evaluate": (*BROKER, *REGISTRY),
    "consume": (*BROKER, "SCHEMA_REGISTRY_URL"),
    "dlq": BROKER,
    "train": (*REGISTRY, "TRAIN_TRIALS", "TRAIN_TREES", "SEED"),
    "promote": REGISTRY,
    "rollback": REGISTRY,
    "label": BROKER,
    "reset-baseline": BROKER,
    "feedback": (*BROKER, "FEEDBACK_PORT", "FEEDBACK_HORIZON_S", "FEEDBACK_THRESHOLD"),
}


def _epilog(names: tuple[str, ...]) -> str:
    listed = ", ".join(f"ASSETWATCH_{name}" for name in names)
    return (f"Settings come from ASSETWATCH_* environment variables or a .env file; this "
            f"command reads {listed} among others (all: .env.example, README 'Configuration').")


def version() -> str:
    """The installed distribution's version."""
    try:
        return metadata.version("assetwatch")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def describe(parser: argparse.ArgumentParser, verbs: argparse._SubParsersAction[Any]) -> None:
    """Give every verb its description, shown defaults and epilog; add ``--version``."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _epilog(BROKER + REGISTRY)
    for name, sub in verbs.choices.items():
        sub.description = DESCRIPTIONS[name]
        sub.epilog = _epilog(SETTINGS[name])
        sub.formatter_class = argparse.ArgumentDefaultsHelpFormatter
        for action in sub._actions:  # options without help text would hide their default
            if action.help is None and action.option_strings:
                action.help = "(default: %(default)s)"
