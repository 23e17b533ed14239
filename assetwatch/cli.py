"""The ``assetwatch`` command: demo, broker, worker, simulate, replay, evaluate, consume, dlq,
train, promote, rollback, label, feedback."""  # noqa: D205, D209 (the --help description)

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from assetwatch.cli_help import describe
from assetwatch.errors import AssetwatchError
from assetwatch.extras import require_extras, requires
from assetwatch.settings import Settings

log = logging.getLogger("assetwatch")

VERB_EXTRAS = {"demo": ("train", "local"), "broker": ("local",), "evaluate": ("train",),
               "train": ("train",), "replay": ("train",)}
"""Verb -> the extras it needs; the others (worker, promote, simulate...) need only core."""


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.local.demo import DemoOptions, run_demo
    from assetwatch.agents.local.demo_fleet import FleetOptions

    fleet = FleetOptions(assets=args.assets, failing=args.failing, ramp_s=args.ramp_seconds,
                         failure_rate_per_hour=args.failure_rate, backfill=args.backfill)
    options = DemoOptions(duration_s=args.duration, headless=args.headless, fleet=fleet,
                          dashboard_port=None if args.no_dashboard else args.dashboard_port)
    summary = run_demo(settings, options)
    print(json.dumps(summary), flush=True)
    return 0 if summary["lost"] == 0 else 1


def _cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.kafka.topics import ensure_topics
    from assetwatch.agents.local.broker import start_broker

    with start_broker(args.port) as broker:
        local = settings.model_copy(update={
            "kafka_bootstrap_servers": broker.bootstrap_servers, "broker_compat": "tansu"})
        created = ensure_topics(local)
        print(f"tansu listening on {broker.bootstrap_servers}; created {len(created)} topics.")
        print("Point other shells at it with:")
        print(f"  export ASSETWATCH_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
        print("  export ASSETWATCH_BROKER_COMPAT=tansu")
        print("Ctrl-C stops it (storage is in memory).", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            while not stopped.wait(1.0) and broker.process.poll() is None:
                pass
        except KeyboardInterrupt:
            pass
    return 0


def _cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.worker.run import run_worker

    run_worker(settings)
    return 0


def _cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.commands.interrupts import stop_on_interrupt
    from assetwatch.agents.commands.progress import Progress
    from assetwatch.agents.commands.simulate import SimulationPlan, run_simulation
    from assetwatch.agents.kafka.topics import ensure_topics
    from assetwatch.features.profiles import load_profile

    ensure_topics(settings)
    plan = SimulationPlan(
        assets=args.assets, count=args.count, duration_s=args.duration,
        rate=None if args.paced else args.rate, failing=args.failing, ramp_s=args.ramp_seconds,
        failure_rate_per_hour=args.failure_rate,
        seed=args.seed if args.seed is not None else settings.seed,
    )
    profile = load_profile(args.profile, settings.profiles_dir)
    progress = Progress(args.count, sys.stderr, verb="simulate", unit="readings")
    stop = threading.Event()
    with stop_on_interrupt(stop, "stopping, flushing what was sent"):
        sent = run_simulation(settings, profile, plan, stop, on_progress=progress.update)
    progress.finish(sent)
    print(json.dumps({"sent": sent, "topic": settings.telemetry_topic,
                      "interrupted": stop.is_set()}), flush=True)
    return 0


def _cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.commands.interrupts import stop_on_interrupt
    from assetwatch.agents.commands.progress import Progress
    from assetwatch.agents.commands.replay import count_rows, replay_records
    from assetwatch.agents.kafka.producer import ReadingPublisher, publish
    from assetwatch.agents.kafka.topics import ensure_topics
    from assetwatch.features.profiles import load_profile
    from assetwatch.features.readings import default_asset_id

    ensure_topics(settings)
    profile = load_profile(args.asset_type, settings.profiles_dir)
    path = Path(args.file)
    asset = args.asset_id or default_asset_id(profile.name, path)
    progress = Progress(count_rows(path) if path.is_file() else None, sys.stderr)
    rate = 1.0 / profile.reading_interval_s if args.paced else args.rate
    stop = threading.Event()
    with stop_on_interrupt(stop, "stopping, flushing what was sent"):
        sent = publish(ReadingPublisher(settings), replay_records(path, profile, asset),
                       rate=rate, on_progress=progress.update, stop=stop)
    progress.finish(sent)
    print(json.dumps({"sent": sent, "asset_id": asset, "topic": settings.telemetry_topic,
                      "interrupted": stop.is_set()}), flush=True)
    return 0


def _cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.commands.evaluate import EvaluateOptions, run_evaluation
    from assetwatch.models.evaluation import format_table

    options = EvaluateOptions(tuple(Path(f) for f in args.files), args.asset_type, args.plot,
                              args.skip_rows, args.label_column, args.external, args.timeout)
    run = run_evaluation(settings, options)
    if not args.json:
        print(format_table(run.evaluation), flush=True)
    print(json.dumps(run.as_dict()), flush=True)
    if run.timed_out:
        print(f"assetwatch: deadline of {args.timeout:g}s passed with readings unanswered "
              f"({run.as_dict()['pooled']['missing']} missing)", file=sys.stderr)
    return 0 if run.evaluation.complete and not run.timed_out else 1


def _cmd_consume(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.kafka.consumer import RecordReader

    stop = threading.Event()
    if args.follow:  # Ctrl-C or SIGTERM ends following cleanly, after the current record
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    shown = 0
    with RecordReader(settings, [args.topic], from_end=args.from_end) as reader:
        until = "Ctrl-C" if args.follow else f"idle for {args.timeout:g}s"
        print(f"consume: reading {args.topic} from the {'end' if args.from_end else 'beginning'}"
              f" until {until}", file=sys.stderr, flush=True)
        records = reader.follow(stop) if args.follow else reader.iterate(args.timeout)
        for record in records:
            print(json.dumps(record.as_line()), flush=True)
            shown += 1
            if args.max and shown >= args.max:
                break
    return 0


def _cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.commands.dlq import (
        DeadLetter,
        Selection,
        format_line,
        replay,
        scan,
        to_json,
    )
    from assetwatch.agents.kafka.topics import ensure_topics

    selection = Selection(frozenset(args.reason or ()), args.max)
    if args.replay:
        ensure_topics(settings)  # a producer would make tansu auto-create it with 4 partitions
        report = replay(settings, selection, args.timeout)
        print(json.dumps({"replayed": report.by_reason.total(),
                          "topic": settings.telemetry_topic}), flush=True)
    else:
        def show(letter: DeadLetter) -> None:
            print(json.dumps(to_json(letter)) if args.json else format_line(letter), flush=True)

        report = scan(settings, selection, args.timeout, show)
    print(f"dead letters: {report.describe()}", file=sys.stderr)
    return 1 if report.timed_out else 0


def _cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.retrain import TrainRequest, run_training

    if args.trials is not None:
        settings = settings.model_copy(update={"train_trials": args.trials})
    request = TrainRequest(tuple(args.profile or settings.profiles),
                           tuple(Path(p) for p in args.input or ()), args.label_column,
                           tuple(Path(p) for p in args.normal_input or ()), args.every)

    def promote(profile: str, version: str) -> Any:
        return _move(settings, profile, "PROMOTE", version)

    return run_training(settings, request, promote if args.promote else None,
                        emit=lambda results: print(json.dumps(results), flush=True))


def _move(settings: Settings, profile: str, action: str, version: str | None = None) -> Any:
    """Move the served alias (promote or roll back), then tell every worker.

    Promote only after the version loads and passes the serving checks.
    """
    from assetwatch.agents.kafka.topics import ensure_topics
    from assetwatch.agents.worker.lifecycle import announce
    from assetwatch.features.profiles import load_profile
    from assetwatch.models.registry import RegistryConfig, rollback
    from assetwatch.models.serving import promote_checked

    config = RegistryConfig.from_settings(settings)
    if action == "PROMOTE":
        move = promote_checked(config, load_profile(profile, settings.profiles_dir), version)
    else:
        move = rollback(config, profile)
    ensure_topics(settings)
    announce(settings, move, action)
    return {"model": move.name, "alias": move.alias, "version": move.version,
            "previous": move.previous}


def _cmd_promote(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps(_move(settings, args.profile, "PROMOTE", args.version)))
    return 0


def _cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps(_move(settings, args.profile, "ROLLBACK")))
    return 0


def _cmd_label(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.commands.labels import label_record, parse_event_time, publish_label
    from assetwatch.agents.kafka.topics import ensure_topics

    record = label_record(args.asset, args.failure, parse_event_time(args.at), args.note,
                          args.id)
    ensure_topics(settings)  # a producer would make tansu auto-create it with 4 partitions
    partition, offset = publish_label(settings, record)
    print(json.dumps({**record, "topic": settings.labels_topic, "partition": partition,
                      "offset": offset}), flush=True)
    return 0


def _cmd_reset_baseline(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.commands.baseline import publish_reset, reset_record
    from assetwatch.agents.kafka.topics import ensure_topics

    record = reset_record(args.asset, args.asset_type, args.reason)
    ensure_topics(settings)
    publish_reset(settings, record)
    print(json.dumps({**record, "topic": settings.telemetry_topic}), flush=True)
    return 0


def _cmd_feedback(settings: Settings, args: argparse.Namespace) -> int:
    from assetwatch.agents.feedback.service import run_feedback

    run_feedback(settings)
    return 0


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
    parser = argparse.ArgumentParser(prog="assetwatch", description=__doc__)
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
    demo.set_defaults(run=_cmd_demo)

    broker = verbs.add_parser("broker", help="run the embedded tansu broker and create topics")
    broker.add_argument("--port", type=int, default=None, help="default: a free port")
    broker.set_defaults(run=_cmd_broker)

    verbs.add_parser("worker", help="run a worker against the configured broker/registry") \
        .set_defaults(run=_cmd_worker)

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
    sim.set_defaults(run=_cmd_simulate)

    replay = verbs.add_parser("replay", help="publish a readings file (CSV, Parquet) of one asset")
    replay.add_argument("file")
    replay.add_argument("--asset-type", default="pump")
    replay.add_argument("--asset-id", default=None, help="default: <type>-<folder>-<file stem>")
    rpace = replay.add_mutually_exclusive_group()
    rpace.add_argument("--rate", type=float, default=None, help="default: as fast as possible")
    rpace.add_argument("--paced", action="store_true", help="one row per reading interval")
    replay.set_defaults(run=_cmd_replay)

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
    evaluate.set_defaults(run=_cmd_evaluate)

    consume = verbs.add_parser("consume", help="print a topic's records as JSON lines")
    consume.add_argument("topic")
    consume.add_argument("--max", type=int, default=0, help="stop after N records")
    consume.add_argument("--timeout", type=float, default=5.0,
                         help="stop when idle SECONDS (not with --follow)")
    consume.add_argument("--from-end", action="store_true",
                         help="start at the end of each partition: only records written after")
    consume.add_argument("--follow", action="store_true",
                         help="keep printing new records until Ctrl-C or SIGTERM (exit 0)")
    consume.set_defaults(run=_cmd_consume)

    dlq = verbs.add_parser("dlq", help="list dead letters, or replay them to the telemetry topic")
    dlq.add_argument("--reason", action="append", help="only this reason (repeatable)")
    dlq.add_argument("--max", type=int, default=0, help="stop after N selected dead letters")
    dlq.add_argument("--timeout", type=float, default=10.0,
                     help="give up when idle SECONDS before reaching the end offsets")
    dlq_mode = dlq.add_mutually_exclusive_group()
    dlq_mode.add_argument("--json", action="store_true", help="full JSON lines (bytes as base64)")
    dlq_mode.add_argument("--replay", action="store_true",
                          help="publish the original key and value bytes to the telemetry topic")
    dlq.set_defaults(run=_cmd_dlq)

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
    train.set_defaults(run=_cmd_train)

    promote = verbs.add_parser("promote", help="serve a version (default: the challenger)")
    promote.add_argument("--profile", required=True, help="profile whose model to promote")
    promote.add_argument("--version", help="registered version; default: @challenger")
    promote.set_defaults(run=_cmd_promote)

    rollback = verbs.add_parser("rollback", help="serve the previously served version again")
    rollback.add_argument("--profile", required=True, help="profile whose model to roll back")
    rollback.set_defaults(run=_cmd_rollback)

    label = verbs.add_parser("label", help="publish a maintenance outcome to the labels topic")
    label.add_argument("--asset", required=True, help="the asset id")
    label.add_argument("--failure", action=argparse.BooleanOptionalAction, required=True,
                       help="--failure: it failed; --no-failure: inspected, no failure")
    label.add_argument("--at", default=None, metavar="TIME",
                       help="when: epoch ms or ISO 8601 (naive = UTC); default: now")
    label.add_argument("--note", default=None, help="free text kept with the label")
    label.add_argument("--id", default=None, help="label id; default: <asset>-<epoch ms>")
    label.set_defaults(run=_cmd_label)

    reset = verbs.add_parser(
        "reset-baseline", help="make an asset learn its normal afresh (e.g. after maintenance)")
    reset.add_argument("--asset", required=True, help="the asset id")
    reset.add_argument("--asset-type", required=True, help="the asset's profile (cnc, pump, ...)")
    reset.add_argument("--reason", default=None, help="free text kept with the order")
    reset.set_defaults(run=_cmd_reset_baseline)

    verbs.add_parser("feedback", help="join labels to predictions; serve precision/recall") \
        .set_defaults(run=_cmd_feedback)
    describe(parser, verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the verb ``argv`` names; returns the exit status (2: invalid settings)."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"assetwatch: invalid settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # mlflow probes git otherwise
    try:
        require_extras(VERB_EXTRAS.get(args.verb, ()), f"assetwatch {args.verb}")
        with contextlib.ExitStack() as needs:  # and if a module of one is missing all the same
            for extra in VERB_EXTRAS.get(args.verb, ()):
                needs.enter_context(requires(extra, f"assetwatch {args.verb}"))
            return int(args.run(settings, args))
    except AssetwatchError as exc:
        print(f"assetwatch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
