"""The demo's status document (one snapshot for every view) and its terminal rendering.

Rates are averaged over ``RATE_WINDOW_S``: the simulator sends one reading per asset per
second in a burst, so a rate over one second aliases with that tick (the issue saw scored/s
swing 0 / 218 / 436 on a healthy worker).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from assetwatch.agents.local.demo_fleet import Fleet
from assetwatch.agents.local.demo_tally import Tally

RATE_WINDOW_S = 10.0
CLEAR = "\x1b[2J\x1b[H"


class Rates:
    """Readings sent and scored per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._samples: deque[tuple[float, int, int]] = deque()
        self._window_s = window_s

    def add(self, at: float, sent: int, scored: int) -> None:
        """Record the counts seen at ``at``."""
        self._samples.append((at, sent, scored))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self._window_s:
            self._samples.popleft()

    def per_second(self) -> tuple[float, float]:
        """(sent/s, scored/s); zeros until two samples a second apart exist."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        (t0, sent0, scored0), (t1, sent1, scored1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 1.0:
            return 0.0, 0.0
        return (sent1 - sent0) / (t1 - t0), (scored1 - scored0) / (t1 - t0)


def status(tally: Tally, fleet: Fleet, rates: Rates, started: float,
           dashboard_url: str | None) -> dict[str, Any]:
    """Everything the views show, from one consistent snapshot.

    The outputs are read before the count sent, so a snapshot never shows more outcomes than
    readings sent.
    """
    document = tally.snapshot()
    sent = fleet.queued
    now = time.monotonic()
    rates.add(now, sent, document["scored"])
    sent_rate, scored_rate = rates.per_second()
    document.update({
        "elapsed_s": round(now - started, 1), "sent": sent, "lag": sent - document["scored"],
        "sent_per_s": round(sent_rate, 1), "scored_per_s": round(scored_rate, 1),
        "backfilling": fleet.backfilling(), "calibration_s": fleet.history_s,
        "fleet_size": fleet.asset_count(),
        "degrading": {a: round(p, 3) for a, p in sorted(fleet.degrading().items())},
        "dashboard": dashboard_url,
    })
    return document


def headless_line(s: dict[str, Any]) -> str:
    """One progress line of a ``--headless`` run."""
    return (f"{s['elapsed_s']:6.0f}s sent={s['sent']} predictions={s['predictions']}"
            f" anomalies={s['anomalies']} dead_letters={s['dead_letters']}"
            f" asset_alerts={s['asset_alerts_raised']} drift_raised={len(s['drift_raised'])}"
            f" calibrating={s['states'].get('calibrating', 0)}")


def render(s: dict[str, Any]) -> str:
    """The full-screen terminal view (80 columns)."""
    latency = s["latency_ms"]
    lines = [
        f"{CLEAR} assetwatch demo  (Ctrl-C stops, drains and prints a summary)",
        f" dashboard {s['dashboard'] or '(off)'}",
        f" elapsed {s['elapsed_s']:7.1f} s   sent {s['sent']:9d} ({s['sent_per_s']:7.1f}/s)"
        f"   scored {s['scored']:9d} ({s['scored_per_s']:7.1f}/s)   lag {s['lag']}",
        f" predictions {s['predictions']}   anomalies {s['anomalies']}   dead letters "
        f"{s['dead_letters']}   latency p50/p95 "
        + (f"{latency['p50']}/{latency['p95']} ms" if latency else "-"),
        " models: " + ", ".join(f"{n} v{v}" for n, v in sorted(s["model_versions"].items())),
        " assets: " + ", ".join(f"{n} {k}" for k, n in sorted(s["states"].items())),
    ]
    if s["backfilling"] or s["states"].get("calibrating"):
        lines.append(f"   calibrating: each asset learns its normal on its first "
                     f"{s['calibration_s']:.0f} s of readings (sent at full speed first); "
                     "nothing is flagged meanwhile")
    lines.append(" simulator is degrading: " + (", ".join(
        f"{a} {p:.0%}" for a, p in s["degrading"].items()) or "none"))
    lines.append(" highest failure probability right now:")
    top = sorted(s["assets"].items(), key=lambda kv: kv[1]["risk"], reverse=True)[:6]
    lines += [f"   {a:<12} {v['risk']:6.1%} {v['state']:<11} {'#' * int(v['risk'] * 30)}"
              for a, v in top]
    if s["predictions"] == 0:
        lines.append("   (waiting for the worker: it joins the group in a few seconds)")
    lines.append(f" asset alerts ({s['asset_alerts_raised']} raised):")
    lines += [f"   {a['state']:<9} {a['kind']:<13} {a['asset_id']:<12} "
              f"p={a['failure_probability']:.2f}" for a in s["asset_alerts"][:5]]
    lines.append(" drift: " + (", ".join(s["drift_raised"]) or "none raised") + "   recent: "
                 + "; ".join(f"{d['state']} {d['feature']} {d['divergence']:.2f}"
                             for d in s["drift_alerts"][:3]))
    lines.append(" model swaps / operator alerts: " + ("; ".join(
        f"{o['kind']} {o['model_name']} v{o['version']}" for o in s["operator_alerts"][:3])
        or "none"))
    return "\n".join(lines)
