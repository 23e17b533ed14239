"""``assetwatch reset-baseline``: order an asset to learn its normal afresh.

The order is a ``BaselineReset`` record on the telemetry topic, keyed by the asset id with
the same partitioner as readings, so it lands on the asset's partition and takes effect
between the readings sent before it and those sent after, in whichever worker owns the asset.
"""

from __future__ import annotations

import time
from typing import Any

from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings


def reset_record(asset_id: str, asset_type: str, reason: str | None = None,
                 now_ms: int | None = None) -> dict[str, Any]:
    """A BaselineReset for one asset, stamped now unless ``now_ms`` says otherwise."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    return {"asset_id": asset_id, "asset_type": asset_type, "requested_timestamp": stamp,
            "reason": reason}


def publish_reset(settings: Settings, record: dict[str, Any]) -> None:
    """Publish the order and wait until the broker has it."""
    publisher = ReadingPublisher(settings)
    publisher.send_raw(record["asset_id"].encode(), codec("BaselineReset").encode(record))
    publisher.flush()
