// The Train view's live charts (uPlot): training loss, train and test error, learning rate and
// throughput per iteration, the training curves shown as a moving average.

import uPlot from "../../vendor/uPlot.esm.js";
import { $ } from "../shell.js";
import { colorOf, label, state, view } from "./state.js";

const SMOOTH = 10; // steps in the displayed moving average
let charts = {};

/** The moving average of the last SMOOTH values (holes skipped, kept as null). */
export function smooth(values) {
  const out = new Array(values.length).fill(null);
  let sum = 0;
  let count = 0;
  const window = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v == null) continue;
    window.push(v);
    sum += v;
    count++;
    if (window.length > SMOOTH) {
      sum -= window.shift();
      count--;
    }
    out[i] = sum / count;
  }
  return out;
}

function chart(target, series, { log = false, yLabel = "" } = {}) {
  const el = $(target);
  el.replaceChildren();
  const width = Math.max(260, el.clientWidth || 380);
  return new uPlot(
    {
      width,
      height: 180,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [{ label: "iteration", size: 30, labelSize: 14 }, { label: yLabel, size: 50, labelSize: 14 }],
      series: [{ label: "step" }, ...series],
    },
    [[], ...series.map(() => [])],
    el,
  );
}

const line = (net, extra = {}) => ({ label: label(net), stroke: colorOf(net.info.name), width: 1.5, spanGaps: true, ...extra });

function lossChart(nets) {
  return chart("chart-loss", nets.map((n) => line(n)), { log: $("log-scale").checked, yLabel: "loss" });
}

/** New charts with one series per net of the run. */
export function buildCharts() {
  const nets = [...state.nets.values()];
  charts.loss = lossChart(nets);
  charts.error = chart(
    "chart-error",
    [...nets.map((n) => line(n, { label: `${label(n)} train` })), ...nets.map((n) => line(n, { label: `${label(n)} test`, dash: [6, 4], points: { show: true, size: 5 } }))],
    { yLabel: "top-1 error %" },
  );
  charts.lr = chart("chart-lr", [{ label: "learning rate", stroke: "#495057", width: 1.5 }], { log: true, yLabel: "lr" });
  charts.speed = chart("chart-speed", nets.map((n) => line(n)), { yLabel: "img/s" });
  view.dataset.charts = "ready";
}

/** The loss chart again, on the scale the log-scale box asks for; false without a run. */
export function rebuildLossChart() {
  if (!state.nets.size) return false;
  charts.loss.destroy();
  charts.loss = lossChart([...state.nets.values()]);
  return true;
}

/** Puts the nets' curves into the charts. */
export function updateCharts(nets) {
  const n = Math.max(...nets.map((net) => net.loss.length));
  const xs = Array.from({ length: n }, (_, i) => i + 1);
  const pad = (a) => Array.from({ length: n }, (_, i) => a[i] ?? null);
  const percent = (v) => (v == null ? null : v * 100);
  charts.loss?.setData([xs, ...nets.map((net) => pad(smooth(net.loss)))]);
  charts.error?.setData([xs, ...nets.map((net) => pad(smooth(net.error)).map(percent)), ...nets.map((net) => pad(net.testError).map(percent))]);
  charts.lr?.setData([xs, pad(nets[0].lr)]);
  charts.speed?.setData([xs, ...nets.map((net) => pad(net.speed))]);
}

export function clearCharts() {
  for (const c of Object.values(charts)) c.destroy();
  charts = {};
}
