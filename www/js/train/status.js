// The Train view's status line and progress bar, and its render loop: charts, heatmaps and
// status redrawn at most once a frame, however many messages the worker posts.

import { $ } from "../shell.js";
import { smooth, updateCharts } from "./charts.js";
import { setState } from "./controls.js";
import { renderHeatmaps } from "./heatmap.js";
import { label, maxStep, state, view } from "./state.js";

let renderQueued = false;

export function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

export function render() {
  const nets = [...state.nets.values()];
  if (!nets.length) return;
  updateCharts(nets);
  renderHeatmaps();
  renderStatus(nets);
}

function renderStatus(nets) {
  const step = maxStep();
  const pct = state.total ? Math.min(100, (100 * step) / state.total) : 0;
  $("train-progress").style.width = `${pct}%`;
  const info = nets[0].info;
  const epoch = info.stepsPerEpoch ? (step / info.stepsPerEpoch).toFixed(2) : "?";
  const parts = nets.map((net) => {
    const i = net.loss.length - 1;
    const loss = smooth(net.loss)[i];
    const err = smooth(net.error)[i];
    return `${label(net)}: loss ${loss?.toFixed(3) ?? "–"}, error ${err != null ? (err * 100).toFixed(1) : "–"}%`;
  });
  // Seconds per iteration of every net: each net processes a batch per iteration.
  const perStep = (nets.length * Number($("train-batch").value)) / Math.max(state.lastSpeed, 1e-9);
  const remaining = Math.max(0, state.total - step) * perStep;
  const eta = state.running && state.lastSpeed ? ` · ETA ${formatDuration(remaining)}` : "";
  const prefix = view.dataset.state === "paused" ? "Paused · " : "";
  $("train-status").textContent = `${prefix}step ${step} / ${state.total} · epoch ${epoch} · lr ${info.lr.toPrecision(2)} · ${state.lastSpeed.toFixed(0)} img/s${eta} · ${parts.join(" · ")}`;
  setState(view.dataset.state);
}

function formatDuration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
