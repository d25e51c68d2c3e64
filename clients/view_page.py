"""The page of ``specklenet view``: HTML, CSS and JavaScript in one string (package data as a module).

Four canvases (``#target``, ``#speckle``, ``#recon``, ``#pcc``) in a 2 × 2 grid; the script opens
``/ws``, draws every image message as it arrives (grey levels scaled to the panel, no smoothing),
plots the last 300 PCC values and their running mean, and reconnects when the view process restarts.
``window.specklenet`` counts what was drawn (``refreshes``, per-kind counts, ``fps``) for tests and
benchmarks.
"""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>specklenet view</title>
<style>
  body { margin: 0; background: #15171a; color: #d8dde3; font: 14px/1.4 system-ui, sans-serif; }
  header { padding: 8px 16px; background: #22262b; }
  header b { color: #fff; }
  #stats { white-space: pre; font-family: ui-monospace, monospace; font-size: 12px; }
  main { display: grid; grid-template-columns: repeat(2, 340px); gap: 12px; padding: 12px 16px; }
  figure { margin: 0; background: #22262b; padding: 8px; border-radius: 4px; }
  figcaption { margin-bottom: 4px; font-weight: 600; }
  canvas { display: block; width: 320px; height: 320px; background: #000; image-rendering: pixelated; }
</style>
</head>
<body>
<header><b>specklenet</b> live view &mdash; <span id="connection">connecting…</span>
<div id="stats"></div></header>
<main>
  <figure><figcaption id="target-caption">target</figcaption>
    <canvas id="target" width="320" height="320"></canvas></figure>
  <figure><figcaption>speckle</figcaption>
    <canvas id="speckle" width="320" height="320"></canvas></figure>
  <figure><figcaption>reconstruction</figcaption>
    <canvas id="recon" width="320" height="320"></canvas></figure>
  <figure><figcaption>PCC (last 300, dashed: running mean)</figcaption>
    <canvas id="pcc" width="320" height="320"></canvas></figure>
</main>
<script>
"use strict";
const state = { refreshes: 0, kinds: {}, fps: 0, pcc: [], pccSum: 0, pccCount: 0, stamps: [] };
window.specklenet = state;
const offscreen = {};

function drawGrey(kind, rows, cols, pixels) {
  const canvas = document.getElementById(kind);
  let off = offscreen[kind];
  if (!off || off.width !== cols || off.height !== rows) {
    off = offscreen[kind] = document.createElement("canvas");
    off.width = cols; off.height = rows;
  }
  const context = off.getContext("2d");
  const image = context.createImageData(cols, rows);
  const rgba = new Uint32Array(image.data.buffer);
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i];
    rgba[i] = 0xff000000 | (v << 16) | (v << 8) | v;
  }
  context.putImageData(image, 0, 0);
  const target = canvas.getContext("2d");
  target.imageSmoothingEnabled = false;
  target.drawImage(off, 0, 0, canvas.width, canvas.height);
}

function drawPcc() {
  const canvas = document.getElementById("pcc");
  const c = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  c.fillStyle = "#000"; c.fillRect(0, 0, w, h);
  c.strokeStyle = "#444"; c.fillStyle = "#aaa"; c.font = "11px sans-serif"; c.lineWidth = 1;
  const y = (v) => h - pad - (Math.max(-0.2, Math.min(1, v)) + 0.2) / 1.2 * (h - 2 * pad);
  for (const v of [0, 0.5, 1]) {
    c.beginPath(); c.moveTo(pad, y(v)); c.lineTo(w - 4, y(v)); c.stroke();
    c.fillText(v.toFixed(1), 4, y(v) + 4);
  }
  const n = state.pcc.length;
  if (n === 0) return;
  const x = (i) => pad + (w - pad - 4) * (n === 1 ? 1 : i / (n - 1));
  c.strokeStyle = "#4fc3f7"; c.lineWidth = 2; c.beginPath();
  state.pcc.forEach((v, i) => (i ? c.lineTo(x(i), y(v)) : c.moveTo(x(i), y(v))));
  c.stroke();
  const mean = state.pccSum / state.pccCount;
  c.strokeStyle = "#ffb74d"; c.setLineDash([6, 4]); c.beginPath();
  c.moveTo(pad, y(mean)); c.lineTo(w - 4, y(mean)); c.stroke(); c.setLineDash([]);
  c.fillStyle = "#fff"; c.font = "13px sans-serif";
  c.fillText("last " + state.pcc[n - 1].toFixed(3) + "   running " + mean.toFixed(3), pad, 16);
}

function onImage(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const pixels = new Uint8Array(buffer, 4 + length);
  state.kinds[meta.kind] = (state.kinds[meta.kind] || 0) + 1;
  if (meta.kind === "target") {
    const caption = document.getElementById("target-caption");
    caption.textContent = "target " + (meta.target_index ?? "unknown") +
      (meta.known ? "" : (meta.target_index === null ? "" : " (start view with --targets FILE to see it)"));
  }
  drawGrey(meta.kind, meta.rows, meta.cols, pixels);
  if (meta.kind === "recon") {
    if (meta.pcc !== null && Number.isFinite(meta.pcc)) {
      state.pcc.push(meta.pcc); state.pccSum += meta.pcc; state.pccCount += 1;
      if (state.pcc.length > 300) state.pcc.shift();
    }
    drawPcc();
    state.refreshes += 1;
    const now = performance.now();
    state.stamps.push(now);
    while (state.stamps.length && state.stamps[0] < now - 1000) state.stamps.shift();
    state.fps = state.stamps.length;
  }
}

function fmt(v, digits) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }

function onStats(s) {
  const latency = s.latency_ms ? "p50 " + fmt(s.latency_ms.p50, 1) + "  p95 " + fmt(s.latency_ms.p95, 1) +
    "  p99 " + fmt(s.latency_ms.p99, 1) + " ms" : "-";
  document.getElementById("stats").textContent =
    "daemon " + (s.connected ? "connected" : "not connected") + " (" + (s.state ?? "?") + ")   model " +
    (s.model ?? "-") + "   stream " + s.stream + "\\n" +
    "recon " + fmt(s.rate_hz, 1) + "/s (page " + state.fps + "/s)   latency " + latency + "\\n" +
    "PCC last " + fmt(s.last_pcc, 3) + "  running " + fmt(s.running_pcc, 3) + "   gaps " + s.gaps +
    " (" + s.lost + " messages lost)   daemon restarts " + s.restarts +
    (s.targets_mismatch ?
      "\\nWARNING: the daemon shows " + s.daemon_targets + ", not --targets " + s.targets : "");
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { document.getElementById("connection").textContent = "view connected"; };
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") return onImage(event.data);
    state.kinds.stats = (state.kinds.stats || 0) + 1;
    onStats(JSON.parse(event.data));
  };
  ws.onclose = () => {
    document.getElementById("connection").textContent = "view disconnected, retrying…";
    setTimeout(connect, 1000);
  };
}
drawPcc();
connect();
</script>
</body>
</html>
"""
