"""The Faust app, built by a factory from the settings: topics, the state table, the agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from assetwatch.agents.kafka.security import faust_credentials
from assetwatch.agents.kafka.topics import STATE_TABLE
from assetwatch.agents.worker.faust_internals import (
    VERIFIED_FAUST_VERSIONS,
    AgentFlowControl,
    AssetwatchTransport,
    TansuTransport,
    abandon,
    ack,
    channel_queue,
    faust_version_verified,
    generation,
    log_ends,
    membership,
    newest_state_table,
)
from assetwatch.agents.worker.fence import OwnershipFence
from assetwatch.agents.worker.lifecycle import ModelWatcher
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.pipeline import BatchPipeline, Ownership
from assetwatch.agents.worker.probe import FaustProbe
from assetwatch.agents.worker.progress import AgentProgress
from assetwatch.agents.worker.query_api import AssetQueries
from assetwatch.agents.worker.scoring import Scorer
from assetwatch.agents.worker.silence import SilenceWatch
from assetwatch.features.state import supersedes
from assetwatch.settings import ClientValue, Settings

log = logging.getLogger(__name__)


class LeanMonitor(Monitor):
    """Faust's monitor without its per-message bookkeeping, which nothing here reads."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing: the per-message bookkeeping is skipped."""
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        """Nothing: the per-event bookkeeping is skipped."""
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """Nothing: the per-event bookkeeping is skipped."""
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing: the per-message bookkeeping is skipped."""
        return None


class AssetwatchApp(faust.App):
    """faust.App plus the broker compatibility switch and the shared client config."""

    assetwatch_client_config: Mapping[str, ClientValue] = {}
    assetwatch_compat: str = "none"
    assetwatch_fetch_max_wait_ms: int = 1500
    assetwatch_direct_topics: frozenset[str] = frozenset()
    """Topics whose messages reach their agent's queue as they are, past the conductor."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """Faust's flow control, but a resume does not clear the agent's queue."""
        return AgentFlowControl(loop=self.loop)

    def _new_transport(self) -> TransportT:
        kind = TansuTransport if self.assetwatch_compat == "tansu" else AssetwatchTransport
        return kind(self.conf.broker_consumer, self)


class RawBytes(faust.Schema[bytes, bytes]):
    """Keys and values as the bytes they came as, handed over without the codec registry.

    With ``key_serializer="raw"`` Faust still looks the codec up and calls it for every key
    and value (~5% of a worker's event loop, profiled); the scoring helper decodes readings.
    """

    def loads_key(self, app: Any, message: Any, *, loads: Any = None,
                  serializer: Any = None) -> Any:
        """The message's key bytes."""
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None,
                    serializer: Any = None) -> Any:
        """The message's value bytes."""
        return message.value


def create_app(
    settings: Settings, scorer: Scorer, metrics: Metrics, probe: FaustProbe | None = None,
    watcher: ModelWatcher | None = None, silence: SilenceWatch | None = None,
    progress: AgentProgress | None = None,
    queries: AssetQueries | None = None,
) -> AssetwatchApp:
    """One app object per worker; nothing happens until a faust Worker starts it."""
    if not faust_version_verified():
        log.warning("faust-streaming %s is not among the versions assetwatch's Faust-internals "
                    "code was verified with (%s)", faust.__version__,
                    ", ".join(sorted(VERIFIED_FAUST_VERSIONS)))
    servers = settings.kafka_bootstrap_servers.split(",")
    client_config = settings.kafka_client_config()
    app = AssetwatchApp(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in servers],
        broker_credentials=faust_credentials(client_config),  # the same as every other client
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
        datadir=str(settings.data_dir / "faust"),
        Monitor=LeanMonitor,
        # The URL the assignor tells the group: how the query API finds an asset's owner.
        canonical_url=queries.url if queries is not None and queries.url else None,
    )
    app.assetwatch_client_config = client_config
    app.assetwatch_compat = settings.broker_compat
    app.assetwatch_fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.assetwatch_direct_topics = frozenset({settings.telemetry_topic})

    telemetry = app.topic(
        settings.telemetry_topic, schema=RawBytes(key_serializer="raw", value_serializer="raw"),
        partitions=settings.partitions,
    )
    states = newest_state_table(
        app,
        STATE_TABLE,
        supersedes,  # recovery keeps each asset's newest state, not its last written one
        partitions=settings.partitions,
        key_type=bytes,  # raw bytes both ways: state has its own compact format
        value_type=bytes,
    )

    @app.agent(telemetry, name="score-telemetry")
    async def score_telemetry(stream: faust.StreamT[bytes]) -> None:
        # Batches are taken straight from the agent's channel queue, which the consumer's
        # pump keeps filling with the fetched messages as they are (no conductor, no Event:
        # faust_internals.AssetwatchConsumer) while a batch is processed; Stream.take_events
        # would route every message through the stream machinery and stop filling during
        # processing (measured here: ~4,400 events/s ceiling for a no-op take_events agent).
        # Messages are acked only after their outputs are delivered and their states written
        # (agents/worker/pipeline.py).
        queue = channel_queue(app, stream)
        index = queries.index if queries is not None else None
        ownership = Ownership(OwnershipFence(lambda: membership(app), settings.session_timeout_s),
                              lambda events: abandon(app, events), lambda: generation(app))
        await BatchPipeline(settings, scorer, states, metrics, lambda messages: ack(app, messages),
                            silence, progress, index, ownership,
                            lambda messages: log_ends(app, messages)).run(queue)

    if probe is not None:
        async def attach_probe() -> None:
            probe.attach(app, asyncio.get_running_loop())

        app.task(attach_probe)

    if queries is not None:
        async def attach_queries() -> None:
            queries.attach(app, asyncio.get_running_loop(), states, settings.telemetry_topic)

        app.task(attach_queries)

    if silence is not None:
        async def watch_silence() -> None:
            silence.attach(lambda: {tp.partition for tp in app.consumer.assignment()
                                    if tp.topic == settings.telemetry_topic})
            await silence.run()

        app.task(watch_silence)

    if watcher is not None:
        async def watch_models() -> None:  # Faust calls a task with the app if it takes args
            await watcher.run()

        app.task(watch_models)

    return app
