"""``assetwatch consume`` on the real broker: every framing, --from-end, --follow, Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import pytest
from confluent_kafka import Producer

from assetwatch.agents.kafka.registry import output_wires
from assetwatch.schemas.wire import Header
from assetwatch.scoring.dead_letters import DeadLetterWriter
from assetwatch.settings import Settings
from tests.integration.conftest import settings_env
from tests.schema_registry_double import SchemaRegistryDouble

pytestmark = pytest.mark.integration

FRAMINGS = ("single-object", "confluent", "json")


def _letters(settings: Settings, tag: str, assets: tuple[str, ...]
             ) -> list[tuple[bytes, bytes, list[Header]]]:
    """(key, value, headers) of one dead letter per framing, its error naming ``tag``."""
    dead_letters = settings.dead_letter_topic
    wires = {"single-object": output_wires(settings.model_copy(
                 update={"schema_registry_url": None}))[dead_letters],
             "confluent": output_wires(settings)[dead_letters],
             "json": output_wires(settings.model_copy(
                 update={"output_format": "json"}))[dead_letters]}
    writer = DeadLetterWriter(1_000_000, time.time)
    out = []
    for i, (name, asset) in enumerate(zip(FRAMINGS, assets, strict=True)):
        key, value = writer.build((asset.encode(), b"\xffraw", "src", i, 40 + i), "late",
                                  f"{tag} {name}", asset_id=asset)
        assert key is not None
        out.append((key, wires[name].frame(value), [*wires[name].headers, ("tag", tag.encode())]))
    return out


def _produce(settings: Settings, records: list[tuple[bytes, bytes, list[Header]]]) -> None:
    producer = Producer({**settings.kafka_client_config(), "partitioner": "murmur2_random"})
    for key, value, headers in records:
        producer.produce(settings.dead_letter_topic, value, key, headers=headers)
    assert producer.flush(30) == 0


def _command(settings: Settings, *flags: str) -> list[str]:
    return [sys.executable, "-m", "assetwatch", "consume", settings.dead_letter_topic, *flags]


def _env(settings: Settings) -> dict[str, str]:
    """This environment without ASSETWATCH_*, then exactly the test's settings."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ASSETWATCH_")},
            **settings_env(settings)}


def _lines(stream: IO[str]) -> queue.Queue[str]:
    """Lines of ``stream`` as they come, read on a thread (readline would block the test)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def _take(lines: queue.Queue[str], until: Callable[[list[str]], bool],
          process: subprocess.Popen[str], timeout_s: float = 60) -> list[str]:
    taken: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not until(taken):
        assert time.monotonic() < deadline, f"timed out with {taken}"
        assert process.poll() is None, f"consume exited with {process.returncode}: {taken}"
        try:
            taken.append(lines.get(timeout=0.2))
        except queue.Empty:
            continue
    return taken


def _check(line: dict[str, Any], settings: Settings, tag: str) -> None:
    value = line["value"]
    assert line["topic"] == settings.dead_letter_topic and line["kind"] == "DeadLetter"
    assert value["error"].startswith(tag)
    assert line["format"] == value["error"].split()[-1]  # as framed
    assert line["key"] == value["asset_id"] == value["original_key"]
    assert value["original_value"] == "\xffraw" and value["reason"] == "late"
    assert isinstance(line["partition"], int) and isinstance(line["offset"], int)
    assert abs(line["timestamp"] - time.time() * 1000) < 600_000
    assert line["headers"]["tag"] == tag
    assert line["headers"]["content-type"].startswith("application/vnd.assetwatch.deadletter+")


def _drain(lines: queue.Queue[str]) -> str:
    out = []
    while not lines.empty():
        out.append(lines.get_nowait())
    return "".join(out)


def test_consume_prints_every_framing_and_follows_from_the_end_until_ctrl_c(
    make_settings: Callable[..., Settings], schema_registry: SchemaRegistryDouble,
) -> None:
    settings = make_settings(schema_registry_url=schema_registry.url)
    # One key: three records in one batch of one partition, where tansu's ListOffsets
    # answers one past the batch's base offset, not its end (the compatibility layer's case).
    _produce(settings, _letters(settings, "old", ("cnc-0",) * 3))

    # Without --follow: from the beginning, every framing, then it stops by itself.
    done = subprocess.run(_command(settings, "--timeout", "2"), env=_env(settings),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(line["format"] for line in printed) == sorted(FRAMINGS)
    for line in printed:
        _check(line, settings, "old")
    old_end = max(line["offset"] for line in printed) + 1

    # --from-end --follow: nothing written before it opened, everything after, until Ctrl-C.
    follower = subprocess.Popen(
        _command(settings, "--from-end", "--follow", "--timeout", "0.5"), env=_env(settings),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert follower.stdout is not None and follower.stderr is not None
    errors, out = _lines(follower.stderr), _lines(follower.stdout)
    _take(errors, lambda seen: any("from the end" in line for line in seen), follower)
    _produce(settings, _letters(settings, "new", ("cnc-0",) * 3))
    lines = [json.loads(x) for x in _take(out, lambda seen: len(seen) == 3, follower)]
    assert [line["value"]["error"] for line in lines] == [f"new {f}" for f in FRAMINGS]
    for line in lines:
        _check(line, settings, "new")
    assert [line["offset"] for line in lines] == [old_end, old_end + 1, old_end + 2]

    idle_until = time.monotonic() + 2.0  # four times --timeout: a plain consume would end
    while time.monotonic() < idle_until:
        assert follower.poll() is None, "--follow stopped when idle"
        assert out.empty(), f"printed more than written: {out.get()}"
        time.sleep(0.1)  # polling interval, not synchronisation
    _produce(settings, _letters(settings, "later", ("cnc-1", "cnc-2", "cnc-3"))[2:])
    late = json.loads(_take(out, lambda seen: len(seen) == 1, follower)[0])
    assert late["value"]["error"] == "later json" and late["key"] == "cnc-3"

    follower.send_signal(signal.SIGINT)
    assert follower.wait(30) == 0
    rest = _drain(errors)
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
