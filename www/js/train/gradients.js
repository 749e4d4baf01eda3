// The Train view's shattered-gradients plot (Balduzzi et al. 2017, "The shattered gradients
// problem"): block by block, the correlation of the input gradients of a test image and of a
// nearby copy, as the wasm package measures it, drawn as an inline SVG plot with a
// visually-hidden table of the same numbers. The page only asks for it and draws it: the images,
// the perturbation and the blocks measured are the package's defaults.

import { $, worker } from "../shell.js";
import { maxStep, state } from "./state.js";
import { FONT, GRID, WIDTH, el, legendItem, series } from "./svg.js";

// The plot's coordinate system (WIDTH wide; the SVG scales to the card's width).
const PLOT_HEIGHT = 190;
const MARGIN = { left: 52, right: 14, top: 12 };
const HEIGHT = MARGIN.top + PLOT_HEIGHT + 40; // room below for the depths and the axis title
const HINT = "Press Why residuals work once the run has trained."; // what the card says without a measurement

// Bumped by every reset: a measurement that answers after its run was reset is not drawn.
let generation = 0;

/** Asks the worker for the measurement of every net of the run (it pauses a running loop), and draws it. */
export async function gradientStudy() {
  const run = generation;
  $("gradients-status").textContent = "Measuring the gradients of test images and of nearby copies, block by block…";
  try {
    const reports = await worker.call("trainGradients");
    if (run !== generation) return;
    state.gradients = { step: maxStep(), reports };
    renderGradients();
  } catch (err) {
    if (run === generation) $("gradients-status").textContent = state.gradients ? statusText() : HINT;
    throw err;
  }
}

/** Forgets the measurement (a new, reset or restored run) and empties the plot. */
export function clearGradients() {
  generation++;
  state.gradients = null;
  $("gradients-plot").replaceChildren();
  $("gradients-legend").replaceChildren();
  $("gradients-table").replaceChildren();
  $("gradients-status").textContent = HINT;
}

const fixed = (v) => v.toFixed(2);

/**
 * The y axis: up to 1, from 0 or, when a correlation is negative, from the 0.2 below it.
 * Fixed, unlike the lesion plot's: a correlation has a natural scale, and 0 (unrelated, like
 * noise) is the level the claim is about.
 */
function yScale(lo) {
  return { min: Math.min(0, Math.floor(lo * 5) / 5), max: 1, step: 0.2 };
}

/** Draws the latest measurement: the SVG plot, its legend and the hidden table of its numbers. */
export function renderGradients() {
  const nets = series(state.gradients.reports);
  const blocks = nets[0].report.blocks;
  const y = yScale(Math.min(...nets.flatMap(({ report }) => report.blocks.map((b) => b.correlation))));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PLOT_HEIGHT;
  // Depth to scale from the input (0) to the deepest block measured: the measured blocks are
  // evenly spaced in blocks, not always in depth.
  const deepest = Math.max(...nets.flatMap(({ report }) => report.blocks.map((b) => b.depth)));
  const xAt = (depth) => MARGIN.left + (plotW * depth) / deepest;
  const yAt = (c) => MARGIN.top + (plotH * (y.max - c)) / (y.max - y.min);

  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "font-family": FONT, "font-size": 11, class: "study-svg" });
  svg.setAttribute("aria-label", summary(nets));
  // The y grid and its labels; 0 (gradients as unrelated as noise) drawn darker.
  for (let k = 0; k <= Math.round((y.max - y.min) / y.step); k++) {
    const v = y.min + k * y.step;
    const at = yAt(v);
    const zero = Math.abs(v) < 1e-9;
    svg.append(el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: at, y2: at, stroke: zero ? "#adb5bd" : GRID }));
    svg.append(el("text", { x: MARGIN.left - 6, y: at + 4, "text-anchor": "end", fill: "#1d2330" }, v.toFixed(1)));
  }
  svg.append(el("text", { transform: `translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)`, "text-anchor": "middle", "font-size": 12, "font-weight": 600 }, "gradient correlation"));
  // A tick and a label at the input (0) and at each measured depth (at most 12, so they fit
  // side by side).
  for (const depth of [0, ...blocks.map((b) => b.depth)]) {
    const x = xAt(depth);
    svg.append(el("line", { x1: x, x2: x, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4, stroke: "#adb5bd" }));
    svg.append(el("text", { x, y: MARGIN.top + plotH + 16, "text-anchor": "middle" }, String(depth)));
  }
  svg.append(el("text", { x: MARGIN.left + plotW / 2, y: HEIGHT - 4, "text-anchor": "middle", "font-size": 12, "font-weight": 600 }, "depth (weighted layers from the input)"));
  svg.append(el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH, stroke: "#adb5bd" }));

  for (const net of nets) {
    const points = net.report.blocks.map((b) => `${xAt(b.depth).toFixed(1)},${yAt(b.correlation).toFixed(1)}`).join(" ");
    svg.append(el("polyline", { points, fill: "none", stroke: net.color, "stroke-width": 1.5 }));
    for (const b of net.report.blocks) {
      const mark = el("circle", { cx: xAt(b.depth), cy: yAt(b.correlation), r: 4, fill: net.color, class: "gradient-mark", "data-net": net.name, "data-block": b.block, "data-depth": b.depth });
      mark.append(el("title", {}, `${net.label} after ${b.block} (depth ${b.depth}): ${fixed(b.correlation)}`));
      svg.append(mark);
    }
  }
  $("gradients-plot").replaceChildren(svg);
  $("gradients-legend").replaceChildren(...nets.map((net) => legendItem(`background:${net.color}`, `${net.label} (${ends(net.report)})`)));
  renderTable(nets, blocks);
  $("gradients-status").textContent = statusText();
}

/** "0.82 at depth 3, 0.37 at depth 19": where a net's correlation starts and ends. */
function ends(report) {
  const [first, last] = [report.blocks[0], report.blocks.at(-1)];
  return `${fixed(first.correlation)} at depth ${first.depth}, ${fixed(last.correlation)} at depth ${last.depth}`;
}

/** Which weights, how many test images and how far apart the two inputs the shown measurement used. */
function statusText() {
  const { images, noise } = Object.values(state.gradients.reports)[0];
  // The package's f32 noise reaches JavaScript as 0.10000000149011612: shown as 0.1.
  return `Your run at step ${state.gradients.step}, on ${images} test images, each paired with a copy plus noise of std ${Number(noise.toPrecision(3))}.`;
}

/** What the plot shows, in words (the SVG's aria-label). */
function summary(nets) {
  const parts = nets.map(({ label, report }) => `${label}: ${ends(report)}`);
  return `Shattered gradients: correlation of the input gradients of an image and a nearby copy after each of ${nets[0].report.blocks.length} blocks. ${parts.join("; ")}.`;
}

/** The plot's numbers for screen readers: one row per measured block, one column per net. */
function renderTable(nets, blocks) {
  const table = document.createElement("table");
  table.createCaption().textContent = "Correlation of the input gradients of an image and a nearby copy, after each block";
  const head = table.createTHead().insertRow();
  for (const text of ["block", "depth", ...nets.map((n) => n.label)]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = text;
    head.append(th);
  }
  const body = table.createTBody();
  blocks.forEach((b, i) => {
    const tr = body.insertRow();
    for (const text of [b.block, String(b.depth), ...nets.map((n) => fixed(n.report.blocks[i].correlation))]) tr.insertCell().textContent = text;
  });
  $("gradients-table").replaceChildren(table);
}
