"""The compose stack's Prometheus and Grafana files.

Valid, scraping every service, and charting only series a worker really exports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/assetwatch.json").read_text())
PROMETHEUS: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
METRIC = re.compile(r"\bassetwatch_[a-z0-9_]+")


class _Lag:
    topic = "t.telemetry"

    def lag(self) -> Mapping[int, int]:
        return {0: 0}


def _exported() -> set[str]:
    """Every series name a worker's registry exposes (labelled families without children too)."""
    registry = CollectorRegistry()
    Metrics(registry, lag=_Lag())
    return {family.name + suffix for family in registry.collect()
            for suffix in SUFFIXES[family.type]}


def _queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in DASHBOARD["panels"]
            for target in panel["targets"]]


def test_every_dashboard_query_uses_only_series_the_worker_exports() -> None:
    exported = _exported()
    assert "assetwatch_dead_letters_total" in exported  # the helper sees labelled families
    for title, expr in _queries():
        used = set(METRIC.findall(expr))
        assert used, f"{title}: {expr} reads no assetwatch series"
        assert used <= exported, f"{title}: {sorted(used - exported)} are not exported"


def test_every_panel_has_a_query_and_reads_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["targets"], panel["title"]
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {uid}


@pytest.mark.parametrize("series", [
    "assetwatch_readings_consumed_total", "assetwatch_consumer_lag",
    "assetwatch_prediction_latency_seconds_bucket", "assetwatch_dead_letters_total",
    "assetwatch_anomalies_total", "assetwatch_asset_alerts_total",
    "assetwatch_drift_alerts_total", "assetwatch_drift_divergence", "assetwatch_model_info",
    "assetwatch_failure_probability_bucket",
])
def test_the_dashboard_charts_what_operators_asked_for(series: str) -> None:
    assert any(series in expr for _, expr in _queries())


def _scraped() -> set[str]:
    return {target for job in PROMETHEUS["scrape_configs"]
            for group in job["static_configs"] for target in group["targets"]}


def test_prometheus_scrapes_every_worker_and_the_feedback_service() -> None:
    expected = set()
    for name, service in COMPOSE["services"].items():
        env = service.get("environment") or {}
        command = service.get("command") or []
        if command[:1] == ["worker"]:
            expected.add(f"{name}:{env['ASSETWATCH_METRICS_PORT']}")
        elif command[:1] == ["feedback"]:
            expected.add(f"{name}:{env['ASSETWATCH_FEEDBACK_PORT']}")
    assert len(expected) == 3 and _scraped() == expected


def test_each_worker_advertises_the_address_the_others_reach_it_at() -> None:
    """Its service name: what compose's DNS resolves for the other workers."""
    for name, service in COMPOSE["services"].items():
        if (service.get("command") or [])[:1] == ["worker"]:
            env = service["environment"]
            assert env["ASSETWATCH_ADVERTISED_URL"] == (
                f"http://{name}:{env['ASSETWATCH_METRICS_PORT']}")


def test_the_trainer_promotes_so_workers_find_a_champion() -> None:
    assert COMPOSE["services"]["trainer"]["command"] == ["train", "--promote"]


def _tool(name: str) -> str:
    """The tool's path; CI installs it (.ci/run), a developer may not have it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs it")
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return path


def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run([_tool("promtool"), "check", "config",
                             str(DEPLOY / "prometheus/prometheus.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
