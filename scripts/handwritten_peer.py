"""The honest peer of the benchmark: a hand-written confluent-kafka micro-batch loop.

It does the work one worker does for a reading, written as plainly as one would by hand:
decode the Avro reading, fold it into the asset's in-memory state with the project's own
feature extractor, score each batch of up to 500 readings with one call per model (the same
ONNX bundle the worker serves), encode each Prediction with the project's writer and
produce it. What it leaves out is what makes the worker a service: no changelog, no
at-least-once commit discipline, no dead letters, drift, alerts or metrics.

    python scripts/handwritten_peer.py   # configured by ASSETWATCH_* variables

It reads ``<prefix>.telemetry`` from the beginning and writes ``<prefix>.predictions``
until SIGTERM. ``scripts/benchmark.py`` runs it on the same broker and input as a worker.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from functools import partial

from confluent_kafka import Consumer, Producer

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import load_profile
from assetwatch.features.state import AssetState
from assetwatch.models.registry import RegistryConfig, served_version
from assetwatch.models.serving import load_version
from assetwatch.schemas.codecs import codec
from assetwatch.schemas.prediction_writer import encode_prediction
from assetwatch.settings import Settings

BATCH = 500
WAIT_S = 0.005
"""Longest a batch waits to fill: consume(n, timeout) holds what came until n came or then."""


def main() -> None:
    settings = Settings()
    profile = load_profile("cnc")
    config = RegistryConfig.from_settings(settings)
    version = served_version(config, "cnc")
    assert version is not None, "the benchmark registers a cnc champion first"
    model = load_version(config, "cnc", version)
    extractor = FeatureExtractor(profile)
    decode = codec("TelemetryReading").decode
    encode = partial(encode_prediction, codec("Prediction").header)
    states: dict[str, AssetState] = defaultdict(extractor.new_state)
    names, features = profile.sensor_names, model.bundle.feature_names
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "handwritten-peer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 10,
                         # a group join on tansu takes half the session timeout (BROKER.md)
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    consumer.subscribe([settings.telemetry_topic])
    producer = Producer({**settings.kafka_client_config(), "linger.ms": 5,
                         "partitioner": "murmur2_random"})
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        messages = [m for m in consumer.consume(BATCH, WAIT_S) if m.error() is None]
        if not messages:
            continue
        readings = [decode(m.value() or b"") for m in messages]
        snapshots = [extractor.fold(states[r["asset_id"]], r["timestamp"],
                                    [r["sensors"][n] for n in names]) for r in readings]
        rows = extractor.rows(snapshots)
        scores = model.bundle.score(rows)
        now_ms = int(time.time() * 1000)
        for i, r in enumerate(readings):
            top = [{"name": features[j], "value": float(rows[i, j]), "z_score": z}
                   for j, z in zip(scores.top_index[i].tolist(), scores.top_z[i].tolist(),
                                   strict=True)]
            record = {"asset_id": r["asset_id"], "asset_type": "cnc",
                      "event_id": r["event_id"], "event_timestamp": r["timestamp"],
                      "processed_timestamp": now_ms,
                      "anomaly_score": float(scores.anomaly_score[i]),
                      "is_anomaly": bool(scores.is_anomaly[i]),
                      "failure_probability": float(scores.failure_probability[i]),
                      "model_name": model.name, "model_version": model.version,
                      "top_features": top}
            producer.produce(settings.predictions_topic, encode(record),
                             r["asset_id"].encode())
        producer.poll(0)
    producer.flush(30)
    consumer.close()


if __name__ == "__main__":
    main()
