"""Showing and selecting dead letters, without a broker."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from assetwatch.agents.commands.dlq import (
    DeadLetter,
    ScanReport,
    Selection,
    format_line,
    preview,
    to_json,
)
from assetwatch.cli import build_parser
from assetwatch.errors import SerializationError
from assetwatch.schemas.codecs import codec

AVRO_READING = codec("TelemetryReading").header + b"\x0ecnc-007"


def _letter(**fields: Any) -> DeadLetter:
    values: dict[str, Any] = {
        "partition": 2, "offset": 41, "reason": "out_of_range",
        "error": "sensor temperature=912.0 is outside [-40.0, 250.0]",
        "source_topic": "assetwatch.telemetry", "source_partition": 3, "source_offset": 1187,
        "original_key": b"cnc-007", "original_value": b'{"asset_id": "cnc-007"}',
        "event_id": "cnc-007-1", "asset_id": "cnc-007", "failed_timestamp": 1_700_000_000_000,
        **fields,
    }
    return DeadLetter(**values)


@pytest.mark.parametrize(("value", "expected"), [
    (None, "none"),
    (b"", "'' (0 B)"),
    (b'{"a": 1}', """'{"a": 1}' (8 B)"""),
    (b'{\n  "a":\t1\n}', """'{ "a": 1 }' (12 B)"""),
    ("température".encode(), "'température' (12 B)"),
    (b"x" * 45, f"'{'x' * 39}…' (45 B)"),
    (b"\x00\xffab", "0x00ff6162 (4 B)"),
    (b"ab\x07", "0x616207 (3 B)"),  # UTF-8, but a control character
    (AVRO_READING, "0xc301556b393cec1a190c0e636e632d303037 (18 B)"),
    (bytes(range(30)), "0x" + bytes(range(20)).hex() + "… (30 B)"),
])
def test_preview_shows_printable_text_else_hex(value: bytes | None, expected: str) -> None:
    assert preview(value) == expected


def test_line_has_reason_source_asset_value_and_error() -> None:
    assert format_line(_letter()) == (
        "out_of_range        assetwatch.telemetry[3]@1187  asset=cnc-007  "
        """value='{"asset_id": "cnc-007"}' (23 B)  """
        "error: sensor temperature=912.0 is outside [-40.0, 250.0]"
    )


def test_line_without_asset_keeps_one_line_and_clips_the_error() -> None:
    line = format_line(_letter(reason="undecodable", asset_id=None, original_value=None,
                               error="first line\nsecond " + "e" * 300))
    assert "\n" not in line
    assert "asset=-  value=none  error: first line second eee" in line
    assert line.endswith("e…")
    assert len(line.split("error: ")[1]) == 160


def test_json_carries_every_field_with_bytes_as_base64() -> None:
    letter = _letter(original_key=None, original_value=AVRO_READING)
    fields = json.loads(json.dumps(to_json(letter)))
    assert fields["original_key"] is None
    assert base64.b64decode(fields["original_value"]) == AVRO_READING
    assert fields == {**dataclasses.asdict(letter), "original_key": None,
                      "original_value": fields["original_value"]}


def test_decode_reads_a_dead_letter_record_and_refuses_others() -> None:
    letter = _letter()
    fields = {k: v for k, v in dataclasses.asdict(letter).items()
              if k not in ("partition", "offset")}
    assert DeadLetter.decode(2, 41, codec("DeadLetter").encode(fields)) == letter
    with pytest.raises(SerializationError):
        DeadLetter.decode(2, 41, AVRO_READING)
    with pytest.raises(SerializationError):
        DeadLetter.decode(2, 41, None)


LETTERS = [_letter(offset=i, reason=r) for i, r in enumerate(
    ["late", "out_of_range", "late", "undecodable", "late", "out_of_range"])]


@pytest.mark.parametrize(("reasons", "limit", "offsets"), [
    ((), 0, [0, 1, 2, 3, 4, 5]),
    (("late",), 0, [0, 2, 4]),
    (("late", "undecodable"), 0, [0, 2, 3, 4]),
    (("late",), 2, [0, 2]),
    ((), 3, [0, 1, 2]),
    (("scoring_failed",), 0, []),
])
def test_selection_filters_by_reason_and_caps_the_count(
    reasons: tuple[str, ...], limit: int, offsets: list[int]
) -> None:
    chosen = Selection(frozenset(reasons), limit).apply(LETTERS)
    assert [letter.offset for letter in chosen] == offsets


def test_selection_reads_nothing_past_its_limit() -> None:
    def letters() -> Iterator[DeadLetter]:
        yield from LETTERS[:3]
        raise AssertionError("read past the limit")

    assert len(list(Selection(frozenset({"late"}), 2).apply(letters()))) == 2


@pytest.mark.parametrize(("report", "expected"), [
    (ScanReport(), "0 selected of 0 read: none"),
    (ScanReport(Counter({"out_of_range": 1, "late": 2}), read=5),
     "3 selected of 5 read: late=2 out_of_range=1"),
    (ScanReport(Counter({"late": 1}), read=1, skipped=2, timed_out=True),
     "1 selected of 1 read: late=1; 2 records that are not DeadLetters skipped; "
     "stopped early: nothing arrived before the end offsets were reached"),
])
def test_report_counts_per_reason(report: ScanReport, expected: str) -> None:
    assert report.describe() == expected


def test_cli_takes_repeated_reasons_and_refuses_json_with_replay() -> None:
    args = build_parser().parse_args(
        ["dlq", "--replay", "--reason", "late", "--reason", "out_of_range", "--max", "9"])
    assert (args.replay, args.reason, args.max, args.json) == (
        True, ["late", "out_of_range"], 9, False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dlq", "--json", "--replay"])
