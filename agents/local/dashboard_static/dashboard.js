// The demo dashboard: polls /api/status every second and the selected asset's history every
// two; draws with the vendored uPlot. Text goes in through textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
const pct = (p) => (100 * p).toFixed(1) + "%";
const clock = (ms) => new Date(ms).toISOString().slice(11, 19);
let selected = null;
let userSelected = false;
let scoreChart = null;
let sensorCharts = [];
let rateChart = null;
const rates = [[], [], []];

function chart(el, title, series, height) {
  const opts = {
    title, width: Math.max(300, el.clientWidth || 600), height: height || 180,
    scales: { x: { time: true } },
    series: [{}, ...series.map((s) => ({ label: s[0], stroke: s[1], width: 1.5 }))],
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

function list(el, items, text) {
  el.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.textContent = text(item);
    return li;
  }));
  if (!items.length) {
    const li = document.createElement("li");
    li.textContent = "none";
    li.className = "none";
    el.append(li);
  }
}

function figures(s) {
  $("elapsed").textContent = s.elapsed_s.toFixed(0) + " s";
  $("sent").textContent = fmt(s.sent);
  $("sent-rate").textContent = s.sent_per_s.toFixed(0) + "/s";
  $("scored").textContent = fmt(s.scored);
  $("scored-rate").textContent = s.scored_per_s.toFixed(0) + "/s";
  $("lag").textContent = fmt(s.lag);
  $("predictions").textContent = fmt(s.predictions);
  $("anomalies").textContent = fmt(s.anomalies);
  $("dead-letters").textContent = fmt(s.dead_letters);
  $("alerts-raised").textContent = fmt(s.asset_alerts_raised);
  $("latency").textContent = s.latency_ms ? `${s.latency_ms.p50} / ${s.latency_ms.p95} ms` : "-";
  const states = Object.entries(s.states).map(([k, n]) => `${n} ${k}`).join(", ");
  $("states").textContent = `${Object.keys(s.assets).length} of ${s.fleet_size} assets: ${states}`;
  const banner = $("banner");
  const calibrating = s.states.calibrating || 0;
  banner.hidden = !(s.backfilling || calibrating);
  banner.textContent = `Calibrating: ${calibrating} assets are learning their normal on their ` +
    `first ${s.calibration_s.toFixed(0)} s of readings (the demo sends that history at full ` +
    "speed first); nothing is flagged or alerted while an asset calibrates.";
}

function fleet(s) {
  const ids = Object.keys(s.assets).sort();
  if (!userSelected) {
    const degrading = Object.keys(s.degrading).filter((a) => s.assets[a]);
    const riskiest = ids.slice().sort((a, b) => s.assets[b].risk - s.assets[a].risk)[0];
    selected = degrading[0] || riskiest || null;
  }
  $("fleet").replaceChildren(...ids.map((id) => {
    const a = s.assets[id];
    const tile = document.createElement("div");
    tile.className = `asset ${a.state}` + (id === selected ? " selected" : "");
    tile.dataset.asset = id;
    tile.dataset.state = a.state;
    tile.title = `${id}: ${a.state}, failure probability ${pct(a.risk)}`;
    const name = document.createElement("span");
    name.textContent = id + (id in s.degrading ? " " : "");
    if (id in s.degrading) {
      const mark = document.createElement("span");
      mark.className = "deg";
      mark.textContent = "▼";
      name.append(mark);
    }
    const risk = document.createElement("span");
    risk.className = "risk";
    risk.textContent = pct(a.risk);
    tile.append(name, risk);
    tile.onclick = () => { selected = id; userSelected = true; refreshAsset(); };
    return tile;
  }));
}

function panels(s) {
  list($("degrading"), Object.entries(s.degrading), ([a, p]) =>
    `${a}: ${pct(p)} of its ramp to failure; now ${s.assets[a] ? s.assets[a].state : "not scored yet"}`);
  list($("models"), Object.entries(s.model_versions), ([m, v]) => `${m} version ${v}`);
  list($("operator-alerts"), s.operator_alerts, (o) =>
    `${clock(o.issued_timestamp)} ${o.kind} ${o.model_name} v${o.version}: ${o.reason}`);
  list($("asset-alerts"), s.asset_alerts, (a) =>
    `${clock(a.event_timestamp)} ${a.state} ${a.kind} ${a.severity} ${a.asset_id} ` +
    `p=${a.failure_probability.toFixed(2)} ${(a.contributing_features || []).slice(0, 3).join(", ")}` +
    (a.asset_id in s.degrading ? " (degrading: a hit)" : ""));
  $("drift-raised").textContent = s.drift_raised.length ? `raised: ${s.drift_raised.join(", ")}` : "none raised";
  list($("drift-alerts"), s.drift_alerts, (d) =>
    `${clock(d.window_end)} ${d.state} ${d.model_name} v${d.model_version} ${d.feature} ` +
    `divergence ${d.divergence.toFixed(3)} (threshold ${d.threshold.toFixed(2)})`);
}

function throughput(s) {
  const t = Date.now() / 1000;
  rates[0].push(t); rates[1].push(s.sent_per_s); rates[2].push(s.scored_per_s);
  if (rates[0].length > 600) rates.forEach((r) => r.shift());
  if (!rateChart) rateChart = chart($("rate-chart"), "readings per second",
    [["sent/s", "#2f6fb3"], ["scored/s", "#2a7d4f"]], 200);
  rateChart.setData(rates);
}

async function refreshAsset() {
  if (!selected) return;
  const response = await fetch(`/api/asset?id=${encodeURIComponent(selected)}`);
  if (!response.ok) return;
  const a = await response.json();
  $("asset-name").textContent = a.asset;
  $("asset-state").textContent = a.degrading === null ? "healthy in the simulator"
    : `degrading in the simulator: ${pct(a.degrading)} of its ramp`;
  const x = a.scores.map((p) => p[0] / 1000);
  if (!scoreChart) scoreChart = chart($("score-chart"), "scores",
    [["failure probability", "#c0392b"], ["anomaly score", "#2f6fb3"], ["baseline score / 10", "#8e44ad"]]);
  scoreChart.setData([x, a.scores.map((p) => p[1]), a.scores.map((p) => p[2]),
    a.scores.map((p) => p[3] / 10)]);
  if (sensorCharts.length !== a.sensor_names.length) {
    $("sensor-charts").replaceChildren();
    sensorCharts = a.sensor_names.map((name) => {
      const el = document.createElement("div");
      $("sensor-charts").append(el);
      return chart(el, name, [[name, "#1d2430"]], 140);
    });
  }
  const sx = a.sensors.map((r) => r[0] / 1000);
  sensorCharts.forEach((c, i) => c.setData([sx, a.sensors.map((r) => r[1][i])]));
}

async function refresh() {
  try {
    const response = await fetch("/api/status");
    const s = await response.json();
    if (!("predictions" in s)) throw new Error("the demo is starting");
    figures(s); fleet(s); panels(s); throughput(s);
    $("connection").textContent = "live";
    $("connection").className = "pill ok";
  } catch (error) {
    $("connection").textContent = `no data: ${error.message}`;
    $("connection").className = "pill bad";
  }
}

refresh().then(refreshAsset);
setInterval(refresh, 1000);
setInterval(refreshAsset, 2000);
