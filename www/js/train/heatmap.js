// The Train view's gradient heatmap: one row per layer, one column per step (the latest
// COLUMNS), colour = log of the gradient norm on a scale shared by every net so they compare
// directly.

import { $ } from "../shell.js";
import { colorOf, label, state } from "./state.js";

export const COLUMNS = 400;

/** One canvas per net of the run, and the legend. */
export function buildHeatmaps() {
  const box = $("heatmaps");
  box.replaceChildren();
  for (const net of state.nets.values()) {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.width = COLUMNS;
    canvas.height = net.info.layers.length;
    canvas.className = "heatmap";
    canvas.dataset.net = net.info.name;
    const caption = document.createElement("figcaption");
    caption.innerHTML = `<span style="color:${colorOf(net.info.name)}">■</span> ${label(net)} — ${net.info.layers.length} layers`;
    figure.append(caption, canvas);
    box.append(figure);
    net.canvas = canvas;
  }
  const legend = document.createElement("div");
  legend.className = "heat-legend muted small";
  legend.id = "heat-legend";
  box.append(legend);
}

export function clearHeatmaps() {
  $("heatmaps").replaceChildren();
}

function heatColor(t) {
  // Dark blue → teal → yellow (viridis-like), t in [0, 1].
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(0.9999, Math.max(0, t)) * (stops.length - 1);
  const i = Math.floor(x);
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}

export function renderHeatmaps() {
  let lo = Infinity;
  let hi = -Infinity;
  for (const net of state.nets.values()) {
    for (const column of net.grads.slice(-COLUMNS)) {
      for (const v of column) {
        if (v > 0) {
          const l = Math.log10(v);
          lo = Math.min(lo, l);
          hi = Math.max(hi, l);
        }
      }
    }
  }
  if (!Number.isFinite(lo)) return;
  for (const net of state.nets.values()) {
    if (!net.canvas) continue;
    const rows = net.info.layers.length;
    const context = net.canvas.getContext("2d");
    const image = context.createImageData(COLUMNS, rows);
    const columns = net.grads.slice(-COLUMNS);
    columns.forEach((column, x) => {
      column.forEach((v, layer) => {
        const t = v > 0 ? (Math.log10(v) - lo) / Math.max(hi - lo, 1e-9) : 0;
        const [r, g, b] = heatColor(t);
        const y = rows - 1 - layer; // input layer at the bottom
        const at = (y * COLUMNS + x) * 4;
        image.data.set([r, g, b, 255], at);
      });
    });
    context.putImageData(image, 0, 0);
  }
  $("heat-legend").textContent = `colour scale: gradient L2 norm from 1e${lo.toFixed(1)} (dark) to 1e${hi.toFixed(1)} (bright)${state.nets.size > 2 ? ", shared by all three nets" : state.nets.size > 1 ? ", shared by both nets" : ""}; the last ${COLUMNS} steps`;
}
