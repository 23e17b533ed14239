"""The worker's query API: GET /assets, /assets/{id} and /models (JSON, on the metrics port).

Like Faust's ``table_route`` (Kafka Streams' interactive queries): every worker advertises
its URL in the group's assignment metadata (Faust's ``canonical_url``), so any worker can
tell which one holds an asset's partition. A request for an asset this worker does not hold
is answered by fetching it from the owner (once: a forwarded request is never forwarded
again). Table, assignment and router are read on the app's loop; decoding and forwarding
happen on the HTTP thread, so a query costs the stream a dict look-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from assetwatch.agents.kafka.topics import STATE_TABLE
from assetwatch.agents.worker.asset_index import AssetEntry, AssetIndex
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.errors import SerializationError
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState

T = TypeVar("T")
Answer = tuple[int, dict[str, Any]]
LOOP_TIMEOUT_S = 2.0
FORWARD_TIMEOUT_S = 5.0
PREFIX = "/assets/"


def _risk(asset: str, entry: AssetEntry) -> dict[str, Any]:
    latest = entry.predictions()[:1]
    row = {"asset_id": asset, "asset_type": entry.profile, "partition": entry.partition}
    if latest:
        keys = ("failure_probability", "is_anomaly", "anomaly_score", "calibrating",
                "event_timestamp", "model_version")
        row.update({key: latest[0][key] for key in keys})
    return row


def _calibration(raw: bytes | None, profiles: Mapping[str, Profile],
                 profile: str | None) -> dict[str, Any] | None:
    """The asset's baseline calibration from its table state (None: no state)."""
    if raw is None:
        return None
    for name in [profile] if profile is not None and profile in profiles else list(profiles):
        try:
            state = AssetState.from_bytes(raw, profiles[name])
        except SerializationError:
            continue  # another profile's layout
        spec = profiles[name].baseline
        return {"calibrating": state.baseline.calibrating(profiles[name]),
                "readings_seen": state.baseline.seen,
                "calibration_readings": spec.calibration_readings,
                "complete_windows": state.baseline.n, "watermark_ms": state.watermark_ms}
    return None


class AssetQueries:
    """Answers the query paths from the index, the state table and the served models."""

    def __init__(self, metrics: Metrics, alias: str) -> None:
        self.index = AssetIndex()
        self.url = ""
        """This worker's advertised base URL (set once the HTTP endpoint is bound)."""
        self._metrics = metrics
        self._alias = alias
        self._profiles: Mapping[str, Profile] = {}
        self._attached: tuple[Any, asyncio.AbstractEventLoop, Any, str] | None = None

    def advertise(self, url: str) -> None:
        """Set the URL other workers reach this one at."""
        self.url = url.rstrip("/")

    def use_profiles(self, profiles: Mapping[str, Profile]) -> None:
        """Know the served profiles, to name an asset's features."""
        self._profiles = dict(profiles)

    def attach(self, app: Any, loop: asyncio.AbstractEventLoop, table: Any, topic: str) -> None:
        """Called from a task of the started app, on its loop."""
        self._attached = (app, loop, table, topic)

    def routes(self) -> dict[str, Callable[[], Answer]]:
        """Exact paths the HTTP endpoint serves from here."""
        return {"/assets": self.assets, "/models": self.models}

    def path_routes(self) -> dict[str, Callable[[str], Answer]]:
        """Path prefixes the HTTP endpoint serves from here."""
        return {PREFIX: self.asset}

    def models(self) -> Answer:
        """``GET /models``: the versions this worker serves."""
        served = self._metrics.served()
        return 200, {"worker": self.url, "alias": self._alias, "models": [
            {"profile": profile, "name": model.name, "version": model.version,
             "features": list(model.bundle.feature_names)}
            for profile, model in sorted(served.items())]}

    def assets(self) -> Answer:
        """``GET /assets``: this worker's assets and their current risk."""
        held = self._on_loop(self._held)
        if held is None:
            return 503, {"error": "the worker's stream is not running"}
        partitions, entries = held
        rows = sorted((_risk(asset, entry) for asset, entry in entries),
                      key=lambda row: -float(row.get("failure_probability", -1.0)))
        return 200, {"worker": self.url, "partitions": partitions, "assets": rows}

    def asset(self, path: str) -> Answer:
        """``GET /assets/{id}``: answered here if held, else by the owner."""
        parts = urllib.parse.urlsplit(path)
        asset = urllib.parse.unquote(parts.path[len(PREFIX):])
        forwarded = "via" in urllib.parse.parse_qs(parts.query)
        found = self._on_loop(lambda: self._lookup(asset))
        if found is None:
            return 503, {"error": "the worker's stream is not running"}
        owner, raw, entry = found
        if owner is None:
            return 503, {"error": "no owner for this asset's partition yet (rebalancing)"}
        if owner != self.url and not forwarded:
            return self._forward(owner, asset)
        return self._document(asset, owner, raw, entry)

    def _held(self) -> tuple[list[int], list[tuple[str, AssetEntry]]]:
        assert self._attached is not None
        app, _, _, topic = self._attached
        partitions = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == topic)
        self.index.retain(partitions)
        return partitions, self.index.entries()

    def _lookup(self, asset: str) -> tuple[str | None, bytes | None, AssetEntry | None]:
        assert self._attached is not None
        app, _, table, _ = self._attached
        key = asset.encode()
        try:
            owner: str | None = str(app.router.key_store(STATE_TABLE, key)).rstrip("/")
        except KeyError:
            owner = None
        return owner, table.data.get(key), self.index.get(asset)

    def _document(self, asset: str, owner: str, raw: bytes | None,
                  entry: AssetEntry | None) -> Answer:
        calibration = _calibration(raw, self._profiles, entry.profile if entry else None)
        if entry is None and calibration is None:
            return 404, {"error": f"no readings of asset {asset[:200]!r}", "worker": owner}
        recent = entry.predictions() if entry else []
        latest = recent[0] if recent else None
        return 200, {
            "asset_id": asset, "worker": owner,
            "asset_type": entry.profile if entry else None,
            "partition": entry.partition if entry else None,
            "model": ({"name": latest["model_name"], "version": latest["model_version"]}
                      if latest else None),
            "latest": latest, "features": entry.feature_values() if entry else {},
            "calibration": calibration, "recent_predictions": recent,
        }

    def _forward(self, owner: str, asset: str) -> Answer:
        """The owner's answer, marked as fetched through this worker."""
        query = urllib.parse.urlencode({"via": self.url})
        url = f"{owner}{PREFIX}{urllib.parse.quote(asset, safe='')}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=FORWARD_TIMEOUT_S) as response:
                status, body = response.status, json.load(response)
        except urllib.error.HTTPError as error:
            status, body = error.code, json.load(error)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return 502, {"error": f"the owner {owner} did not answer: {exc}", "worker": owner}
        return status, {**body, "via": self.url}

    def _on_loop(self, read: Callable[[], T]) -> T | None:
        """``read()`` run on the app's loop; None when the app is not running or too busy."""
        if self._attached is None:
            return None
        loop = self._attached[1]

        async def call() -> T:
            return read()

        coroutine = call()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        except RuntimeError:  # the loop is closed: the worker is shutting down
            coroutine.close()
            return None
        try:
            return future.result(LOOP_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return None
