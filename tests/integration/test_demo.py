"""``assetwatch demo`` as a user runs it: its dashboard in a real browser, then Ctrl-C.

One demo subprocess serves the module (it trains its first-run baselines, so it is not cheap):
the browser test reads the page while it runs and the SIGINT test, last in the file, stops it
as a terminal does, by signalling its whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assetwatch.agents.local.broker import free_port
from tests.integration.conftest import http_get, poll_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    stderr: Path
    url: str
    first_prediction_s: float

    def alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"demo exited with {self.process.returncode}:\n"
                        f"{self.stderr.read_text(errors='replace')[-3000:]}")

    def status(self) -> dict[str, Any]:
        code, body = http_get(self.url + "api/status")
        document: dict[str, Any] = json.loads(body) if code == 200 else {}
        return document


def _dashboard_url(stderr: Path) -> str | None:
    found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", stderr.read_text(errors="replace"))
    return found.group(1) if found else None


def _start_demo(folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``assetwatch demo`` on an empty data dir, in its own session as a shell starts a job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETWATCH_")}
    env.update(ASSETWATCH_DATA_DIR=str(folder / ".assetwatch"), PYTHONPATH=str(ROOT))
    stderr = folder / "demo.stderr"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "assetwatch", "demo", "--headless", "--assets", "6",
             "--failing", "1", "--dashboard-port", str(free_port())],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
            start_new_session=True)
    return process, stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A fresh demo (empty registry) in its own session, as a shell starts a foreground job."""
    folder = tmp_path_factory.mktemp("demo")
    started = time.monotonic()
    process, stderr = _start_demo(folder)
    running = Demo(process, stderr, "", 0.0)
    try:
        running.url = poll_until(lambda: _dashboard_url(stderr), "the dashboard URL",
                                 running.alive, 240)
        poll_until(lambda: running.status().get("predictions"), "a first prediction",
                   running.alive, 240)
        running.first_prediction_s = time.monotonic() - started
        print(json.dumps({"test": "demo", "first_prediction_s":
                          round(running.first_prediction_s, 1)}))
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _chromium(*args: str, profile: Path) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               "--window-size=1400,1800", *args]
    result = subprocess.run(command, capture_output=True, timeout=120, check=True)
    return result.stdout.decode(errors="replace")


def _text_of(dom: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert found, f"no #{element_id} in the page"
    return found.group(1)


def test_dashboard_shows_live_figures_in_chromium(demo: Demo, tmp_path: Path) -> None:
    poll_until(lambda: demo.status().get("states", {}).get("normal"), "a calibrated asset",
               demo.alive, 240)
    dom = _chromium("--virtual-time-budget=6000", "--dump-dom", demo.url,
                    profile=tmp_path / "profile")
    after = demo.status()
    ARTIFACTS.mkdir(exist_ok=True)
    _chromium("--virtual-time-budget=6000", f"--screenshot={ARTIFACTS / 'dashboard.png'}",
              demo.url, profile=tmp_path / "profile-shot")

    shown = int(_text_of(dom, "predictions").replace(",", ""))
    tiles = re.findall(r'class="asset (normal|calibrating|alert)', dom)
    print(json.dumps({"test": "dashboard", "predictions_shown": shown,
                      "predictions_after": after["predictions"], "tiles": len(tiles),
                      "screenshot": str(ARTIFACTS / "dashboard.png")}))
    assert _text_of(dom, "connection") == "live"
    assert 0 < shown <= after["predictions"]
    assert len(tiles) == after["fleet_size"]
    assert "normal" in tiles
    assert "assetwatch-cnc version" in dom  # the models panel, from the worker's predictions
    assert 'class="u-wrap"' in dom or "uplot" in dom  # uPlot drew the charts
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_ctrl_c_drains_then_stops_everything_and_reports_the_truth(demo: Demo) -> None:
    stopping = time.monotonic()
    os.killpg(demo.process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    stdout, _ = demo.process.communicate(timeout=60)
    shutdown_s = time.monotonic() - stopping
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    log = demo.stderr.read_text(errors="replace")
    print(json.dumps({"test": "demo-sigint", "shutdown_s": round(shutdown_s, 1), **summary}))

    assert demo.process.returncode == 0, log[-3000:]
    assert summary["events_produced"] > 0
    assert summary["predictions"] == summary["events_produced"]
    assert summary["lost"] == 0 and summary["dead_letters"] == 0
    assert shutdown_s < 10
    assert "Connection refused" not in log and "Traceback" not in log


def test_ctrl_c_while_the_worker_trains_stops_it_and_exits_0(tmp_path: Path) -> None:
    """The worker trains the first-run baselines while the demo waits: Ctrl-C then too."""
    process, stderr = _start_demo(tmp_path)
    worker_log = tmp_path / ".assetwatch" / "logs" / "worker.log"
    try:
        poll_until(lambda: worker_log.exists() and "looking up" in worker_log.read_text(),
                   "the worker loading its models", lambda: None, 120)
        stopping = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    shutdown_s = time.monotonic() - stopping
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    log = stderr.read_text(errors="replace")
    print(json.dumps({"test": "demo-sigint-at-start", "shutdown_s": round(shutdown_s, 1),
                      **summary}))

    assert process.returncode == 0, log[-3000:]
    assert summary["events_produced"] == 0 and summary["lost"] == 0
    assert shutdown_s < 10
    assert "Traceback" not in log
    assert _running_in(tmp_path) == [], "the worker or the broker outlived the demo"


def _running_in(folder: Path) -> list[int]:
    """Pids of the processes whose working directory is ``folder`` (Linux /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cwd").readlink() == folder:
                pids.append(int(proc.name))
    return pids
