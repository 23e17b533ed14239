"""Model lifecycle on the broker: announce alias moves, keep every worker's models current.

A ``ModelUpdate`` must reach every worker, so it is not consumed in the workers' group (which
would hand it to one of them): each worker reads the model-updates topic on its own, from
the end, with no group membership. An update only triggers a look at the registry, which
stays the source of truth: a repeated, stale or reordered update cannot make a worker serve
the wrong version, and a periodic look catches an update a worker missed.

Which version to serve, reject or shadow-score is decided by
:class:`~assetwatch.agents.worker.served_models.ServedModels`; this module is its I/O: the
update feed, the registry reads and the checked load (:class:`RegistryModels`, run off the
event loop).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, TopicPartition

from assetwatch.agents.kafka import clients
from assetwatch.agents.worker.operator_alerts import OperatorAlerts
from assetwatch.agents.worker.served_models import ServedModels
from assetwatch.errors import BrokerError, SerializationError
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.checks import reference_features
from assetwatch.models.registry import (
    CHALLENGER,
    AliasMove,
    RegistryConfig,
    served_version,
)
from assetwatch.models.serving import load_checked
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 10.0
POLL_S = 0.5


def announce(settings: Settings, move: AliasMove, action: str) -> None:
    """Publish the ``ModelUpdate`` for ``move`` (action PROMOTE or ROLLBACK) and wait for it."""
    producer = clients.producer(settings, {"acks": "all"})
    record = {
        "model_name": move.name, "alias": move.alias, "version": move.version,
        "previous_version": move.previous, "action": action,
        "issued_timestamp": int(time.time() * 1000),
    }
    producer.produce(settings.model_updates_topic, codec("ModelUpdate").encode(record),
                     move.name.encode())
    if producer.flush(METADATA_TIMEOUT_S):
        raise BrokerError(f"the model update for {move.name} was not acknowledged")


class UpdateFeed:
    """A thread reading the model-updates topic from its end, outside any consumer group.

    The end is taken as the high watermark when the feed opens; ``ready`` is set once it is,
    so a registry look after ``ready`` covers every update the feed will not see.
    """

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop,
                 queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._settings, self._loop, self._queue = settings, loop, queue
        self.ready = asyncio.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)

    def start(self) -> None:
        """Start the feed's thread; ``ready`` is set once it has opened at the end."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop; it ends after its current poll."""
        self._stop.set()

    def _consumer(self) -> Consumer:
        topic = self._settings.model_updates_topic
        consumer = clients.consumer(
            self._settings, f"{self._settings.app_id}-model-updates-{uuid.uuid4().hex}")
        try:
            starts = []
            for partition in clients.partitions_of(consumer, topic):
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S)
                starts.append(TopicPartition(topic, partition, max(int(high) - 1, 0)))
        except BaseException:
            consumer.close()
            raise
        # One record before the end: tansu may report the end one batch short, and reading
        # an update twice is harmless.
        consumer.assign(starts)
        return consumer

    def _run(self) -> None:
        try:
            consumer = self._consumer()
        except Exception:
            log.exception("cannot read model updates: relying on the periodic registry check")
            return
        finally:
            self._loop.call_soon_threadsafe(self.ready.set)
        decode = codec("ModelUpdate").decode
        try:
            while not self._stop.is_set():
                message = consumer.poll(POLL_S)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("model updates: %s", error)
                    continue
                try:
                    update = decode(message.value() or b"")
                except SerializationError as exc:
                    log.warning("skipping an unreadable model update: %s", exc)
                    continue
                self._loop.call_soon_threadsafe(self._queue.put_nowait, update)
        finally:
            consumer.close()


class RegistryModels:
    """The MLflow registry as :class:`ServedModels` reads it (blocking calls)."""

    def __init__(self, settings: Settings, profiles: Mapping[str, Profile]) -> None:
        self._config = RegistryConfig.from_settings(settings)
        self._profiles = dict(profiles)
        self._references: dict[str, np.ndarray] = {}

    def champion(self, profile: str) -> str | None:
        """The version the served alias names."""
        return served_version(self._config, profile)

    def challenger(self, profile: str) -> str | None:
        """The version ``@challenger`` names."""
        return served_version(self._config, profile, CHALLENGER)

    def load_checked(self, profile: str, version: str) -> ScoringModel:
        """``version`` loaded and checked against the profile's reference rows."""
        if profile not in self._references:
            self._references[profile] = reference_features(self._profiles[profile])
        return load_checked(self._config, self._profiles[profile], version,
                            self._references[profile])


class ModelWatcher:
    """Refreshes the served models on every model update, and periodically."""

    def __init__(self, settings: Settings, profiles: Iterable[str], served: ServedModels,
                 alerts: OperatorAlerts) -> None:
        self._settings = settings
        self._profiles = list(profiles)
        config = RegistryConfig.from_settings(settings)
        self._by_model_name = {config.model_name(p): p for p in self._profiles}
        self._served = served
        self._alerts = alerts

    async def run(self) -> None:
        """Until cancelled: react to model updates, and look at the registry periodically."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        feed = UpdateFeed(self._settings, asyncio.get_running_loop(), queue)
        feed.start()
        interval = self._settings.model_check_interval_s
        try:
            await feed.ready.wait()
            for profile in self._profiles:  # whatever moved before the feed was reading
                await self._served.refresh(profile)
            while True:
                try:
                    update = await asyncio.wait_for(queue.get(), interval)
                except TimeoutError:
                    due = list(self._profiles)
                else:
                    due = self._profiles_named_by(update)
                for profile in due:
                    await self._served.refresh(profile)
        finally:
            feed.stop()
            self._alerts.flush(1.0)

    def _profiles_named_by(self, update: Mapping[str, Any]) -> list[str]:
        profile = self._by_model_name.get(update["model_name"])
        if profile is None:
            return []
        log.info("model update: %s@%s -> %s (%s)", update["model_name"], update["alias"],
                 update["version"], update["action"])
        return [profile]
