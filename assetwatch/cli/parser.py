"""The ``assetwatch`` argument parser: every verb's arguments, and the function that runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

from assetwatch.cli.help import describe
from assetwatch.cli.verbs import (
    cmd_broker,
    cmd_consume,
    cmd_demo,
    cmd_dlq,
    cmd_evaluate,
    cmd_feedback,
    cmd_label,
    cmd_promote,
    cmd_replay,
    cmd_reset_baseline,
    cmd_rollback,
    cmd_simulate,
    cmd_train,
    cmd_worker,
)

DESCRIPTION = ("The ``assetwatch`` command: demo, broker, worker, simulate, replay, evaluate, "
               "consume, dlq,\ntrain, promote, rollback, label, feedback.")
"""What ``assetwatch --help`` says first."""


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _hours(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of hours")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    parser = argparse.ArgumentParser(prog="assetwatch", description=DESCRIPTION)
    verbs = parser.add_subparsers(dest="verb", required=True)

    demo = verbs.add_parser("demo", help="broker + registry + model + worker + simulator + view")
    demo.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    demo.add_argument("--headless", action="store_true", help="no live view; print a summary")
    demo.add_argument("--assets", type=int, default=50, help="simulated CNC assets (1 Hz each)")
    demo.add_argument("--failing", type=int, default=2, help="assets degrading to failure")
    demo.add_argument("--ramp-seconds", type=float, default=60.0, help="length of a degradation")
    demo.add_argument("--failure-rate", type=float, default=0.3,
                      help="degradations starting per asset-hour across the fleet")
    demo.add_argument("--dashboard-port", type=int, default=8765,
                      help="loopback port of the web dashboard (0: a free one)")
    demo.add_argument("--no-dashboard", action="store_true", help="no web dashboard")
    demo.add_argument("--backfill", action=argparse.BooleanOptionalAction, default=True,
                      help="send each asset's calibration history at full speed first")
    demo.set_defaults(run=cmd_demo)

    broker = verbs.add_parser("broker", help="run the embedded tansu broker and create topics")
    broker.add_argument("--port", type=int, default=None, help="default: a free port")
    broker.set_defaults(run=cmd_broker)

    verbs.add_parser("worker", help="run a worker against the configured broker/registry") \
        .set_defaults(run=cmd_worker)

    sim = verbs.add_parser("simulate", help="publish synthetic telemetry")
    sim.add_argument("--profile", default="cnc")
    sim.add_argument("--assets", type=int, default=10)
    sim.add_argument("--count", type=int, default=None, help="stop after N readings")
    sim.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    pace = sim.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=1000.0, help="readings per second")
    pace.add_argument("--paced", action="store_true", help="one reading per asset per second")
    sim.add_argument("--failing", type=int, default=0, help="assets degrading to failure")
    sim.add_argument("--ramp-seconds", type=float, default=1200.0)
    sim.add_argument("--failure-rate", type=float, default=0.0,
                     help="degradations starting per asset-hour (Poisson)")
    sim.add_argument("--seed", type=int, default=None)
    sim.set_defaults(run=cmd_simulate)

    replay = verbs.add_parser("replay", help="publish a readings file (CSV, Parquet) of one asset")
    replay.add_argument("file")
    replay.add_argument("--asset-type", default="pump")
    replay.add_argument("--asset-id", default=None, help="default: <type>-<folder>-<file stem>")
    rpace = replay.add_mutually_exclusive_group()
    rpace.add_argument("--rate", type=float, default=None, help="default: as fast as possible")
    rpace.add_argument("--paced", action="store_true", help="one row per reading interval")
    replay.set_defaults(run=cmd_replay)

    evaluate = verbs.add_parser("evaluate", help="backtest labelled files through a worker")
    evaluate.add_argument("files", nargs="+", metavar="FILE", help="CSV (SKAB's too) or Parquet")
    evaluate.add_argument("--asset-type", default="pump")
    evaluate.add_argument("--label-column", default=None, help="default: anomaly, else label")
    evaluate.add_argument("--skip-rows", type=_count, default=400,
                          help="first rows of each file not scored (SKAB: 400)")
    evaluate.add_argument("--plot", type=Path, default=None, metavar="DIR",
                          help="write one PNG per file to DIR")
    evaluate.add_argument("--json", action="store_true", help="only the JSON line")
    evaluate.add_argument("--external", action="store_true",
                          help="use ASSETWATCH_KAFKA_BOOTSTRAP_SERVERS, not an embedded broker")
    evaluate.add_argument("--timeout", type=float, default=600.0,
                          help="seconds for the worker to get ready, then for all outcomes")
    evaluate.set_defaults(run=cmd_evaluate)

    consume = verbs.add_parser("consume", help="print a topic's records as JSON lines")
    consume.add_argument("topic")
    consume.add_argument("--max", type=int, default=0, help="stop after N records")
    consume.add_argument("--timeout", type=float, default=5.0,
                         help="stop when idle SECONDS (not with --follow)")
    consume.add_argument("--from-end", action="store_true",
                         help="start at the end of each partition: only records written after")
    consume.add_argument("--follow", action="store_true",
                         help="keep printing new records until Ctrl-C or SIGTERM (exit 0)")
    consume.set_defaults(run=cmd_consume)

    dlq = verbs.add_parser("dlq", help="list dead letters, or replay them to the telemetry topic")
    dlq.add_argument("--reason", action="append", help="only this reason (repeatable)")
    dlq.add_argument("--max", type=int, default=0, help="stop after N selected dead letters")
    dlq.add_argument("--timeout", type=float, default=10.0,
                     help="give up when idle SECONDS before reaching the end offsets")
    dlq_mode = dlq.add_mutually_exclusive_group()
    dlq_mode.add_argument("--json", action="store_true", help="full JSON lines (bytes as base64)")
    dlq_mode.add_argument("--replay", action="store_true",
                          help="publish the original key and value bytes to the telemetry topic")
    dlq.set_defaults(run=cmd_dlq)

    train = verbs.add_parser("train", help="train models and register them as challenger")
    train.add_argument("--profile", action="append", help="repeatable; default: all served")
    train.add_argument("--input", action="append", metavar="FILE",
                       help="labelled readings, CSV or Parquet (repeatable; default: synthetic)")
    train.add_argument("--normal-input", action="append", metavar="FILE",
                       help="a file of normal operation (repeatable): every row counts as "
                            "normal, no label column needed (SKAB: anomaly-free.csv)")
    train.add_argument("--label-column", default="label",
                       help="the 0/1 label column of --input (SKAB: anomaly)")
    train.add_argument("--trials", type=_count, default=None,
                       help="hyper-parameter search trials (default: ASSETWATCH_TRAIN_TRIALS)")
    train.add_argument("--promote", action="store_true",
                       help="then promote it to the served alias right away")
    train.add_argument("--every", type=_hours, default=None, metavar="HOURS",
                       help="retrain every HOURS until Ctrl-C/SIGTERM (default: once)")
    train.set_defaults(run=cmd_train)

    promote = verbs.add_parser("promote", help="serve a version (default: the challenger)")
    promote.add_argument("--profile", required=True, help="profile whose model to promote")
    promote.add_argument("--version", help="registered version; default: @challenger")
    promote.set_defaults(run=cmd_promote)

    rollback = verbs.add_parser("rollback", help="serve the previously served version again")
    rollback.add_argument("--profile", required=True, help="profile whose model to roll back")
    rollback.set_defaults(run=cmd_rollback)

    label = verbs.add_parser("label", help="publish a maintenance outcome to the labels topic")
    label.add_argument("--asset", required=True, help="the asset id")
    label.add_argument("--failure", action=argparse.BooleanOptionalAction, required=True,
                       help="--failure: it failed; --no-failure: inspected, no failure")
    label.add_argument("--at", default=None, metavar="TIME",
                       help="when: epoch ms or ISO 8601 (naive = UTC); default: now")
    label.add_argument("--note", default=None, help="free text kept with the label")
    label.add_argument("--id", default=None, help="label id; default: <asset>-<epoch ms>")
    label.set_defaults(run=cmd_label)

    reset = verbs.add_parser(
        "reset-baseline", help="make an asset learn its normal afresh (e.g. after maintenance)")
    reset.add_argument("--asset", required=True, help="the asset id")
    reset.add_argument("--asset-type", required=True, help="the asset's profile (cnc, pump, ...)")
    reset.add_argument("--reason", default=None, help="free text kept with the order")
    reset.set_defaults(run=cmd_reset_baseline)

    verbs.add_parser("feedback", help="join labels to predictions; serve precision/recall") \
        .set_defaults(run=cmd_feedback)
    describe(parser, verbs)
    return parser
