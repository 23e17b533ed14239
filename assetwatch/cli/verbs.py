"""What each ``assetwatch`` verb does: one function per verb, given the settings and its arguments.

Each imports what it needs when it runs, so ``assetwatch --help`` and a worker load only their
own extras' modules.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from assetwatch.settings import Settings


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch demo``; its exit status."""
    from assetwatch.agents.local.demo import DemoOptions, run_demo
    from assetwatch.agents.local.demo_fleet import FleetOptions

    fleet = FleetOptions(assets=args.assets, failing=args.failing, ramp_s=args.ramp_seconds,
                         failure_rate_per_hour=args.failure_rate, backfill=args.backfill)
    options = DemoOptions(duration_s=args.duration, headless=args.headless, fleet=fleet,
                          dashboard_port=None if args.no_dashboard else args.dashboard_port)
    summary = run_demo(settings, options)
    print(json.dumps(summary), flush=True)
    return 0 if summary["lost"] == 0 else 1


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch broker``; its exit status."""
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


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch worker``; its exit status."""
    from assetwatch.agents.worker.run import run_worker

    run_worker(settings)
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch simulate``; its exit status."""
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


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch replay``; its exit status."""
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


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch evaluate``; its exit status."""
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


def cmd_consume(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch consume``; its exit status."""
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


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch dlq``; its exit status."""
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


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch train``; its exit status."""
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


def cmd_promote(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch promote``; its exit status."""
    print(json.dumps(_move(settings, args.profile, "PROMOTE", args.version)))
    return 0


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch rollback``; its exit status."""
    print(json.dumps(_move(settings, args.profile, "ROLLBACK")))
    return 0


def cmd_label(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch label``; its exit status."""
    from assetwatch.agents.commands.labels import label_record, parse_event_time, publish_label
    from assetwatch.agents.kafka.topics import ensure_topics

    record = label_record(args.asset, args.failure, parse_event_time(args.at), args.note,
                          args.id)
    ensure_topics(settings)  # a producer would make tansu auto-create it with 4 partitions
    partition, offset = publish_label(settings, record)
    print(json.dumps({**record, "topic": settings.labels_topic, "partition": partition,
                      "offset": offset}), flush=True)
    return 0


def cmd_reset_baseline(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch reset-baseline``; its exit status."""
    from assetwatch.agents.commands.baseline import publish_reset, reset_record
    from assetwatch.agents.kafka.topics import ensure_topics

    record = reset_record(args.asset, args.asset_type, args.reason)
    ensure_topics(settings)
    publish_reset(settings, record)
    print(json.dumps({**record, "topic": settings.telemetry_topic}), flush=True)
    return 0


def cmd_feedback(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``assetwatch feedback``; its exit status."""
    from assetwatch.agents.feedback.service import run_feedback

    run_feedback(settings)
    return 0
