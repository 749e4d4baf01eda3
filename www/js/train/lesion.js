// The Train view's lesion study (Veit et al. 2016, "Residual networks behave like ensembles of
// relatively shallow networks"): the test error of each net with one block deleted in turn, as
// the wasm package measures it, drawn as an inline SVG plot with a visually-hidden table of the
// same numbers. The page only asks for it and draws it.

import { $, worker } from "../shell.js";
import { maxStep, state } from "./state.js";
import { FONT, GRID, WIDTH, el, legendItem, series } from "./svg.js";

// The plot's coordinate system (WIDTH wide; the SVG scales to the card's width).
const PLOT_HEIGHT = 190;
const MARGIN = { left: 52, right: 14, top: 12 };
const DOWNSAMPLING_FILL = "#eef1f6";
const HINT = "Press Why residuals work once the run has trained."; // what the card says without a study

// Bumped by every reset: a study that answers after its run was reset is not drawn.
let generation = 0;

/** Asks the worker for the study of every net of the run (it pauses a running loop), and draws it. */
export async function lesionStudy() {
  const run = generation;
  // The wasm package measures each deletion on as many test images as the run's evaluations
  // (500 by default: a study of ResNet-20 and its twin took about 2 minutes on two CPU cores).
  $("lesion-status").textContent = "Deleting each block in turn and testing every net on the run's evaluation images…";
  try {
    const reports = await worker.call("trainLesion");
    if (run !== generation) return;
    state.lesion = { step: maxStep(), reports };
    renderLesion();
  } catch (err) {
    if (run === generation) $("lesion-status").textContent = state.lesion ? statusText() : HINT;
    throw err;
  }
}

/** Forgets the study (a new, reset or restored run) and empties the plot. */
export function clearLesion() {
  generation++;
  state.lesion = null;
  $("lesion-plot").replaceChildren();
  $("lesion-legend").replaceChildren();
  $("lesion-table").replaceChildren();
  $("lesion-status").textContent = HINT;
}

const percent = (v) => `${(v * 100).toFixed(1)}%`;

/**
 * The y axis (in %): round bounds around the errors and a tick step giving 2 to 5 intervals.
 * Not from 0: a net near chance errs at 85–92% with or without a block, and a 0–100 axis
 * would flatten those differences into one line at the top.
 */
function yScale(lo, hi) {
  const span = Math.max(hi - lo, 4);
  const step = [1, 2, 5, 10, 20, 25].find((s) => span / s <= 5) ?? 25;
  const min = Math.max(0, Math.floor(lo / step) * step);
  // A step of headroom when the worst error would (nearly) touch the top edge.
  const ceiling = Math.ceil(hi / step) * step;
  const max = Math.min(100, ceiling - hi < step / 10 ? ceiling + step : ceiling);
  return { min, max, step };
}

/** Draws the latest study: the SVG plot, its legend and the hidden table of its numbers. */
export function renderLesion() {
  const nets = series(state.lesion.reports);
  const blocks = nets[0].report.blocks;
  const n = blocks.length;
  const all = nets.flatMap(({ report }) => [report.intactError, ...report.blocks.map((b) => b.top1Error)]);
  const y = yScale(Math.min(...all) * 100, Math.max(...all) * 100);
  // The x labels: every block while they fit side by side, else slanted (room for them below)
  // and, past 27 blocks (ResNet-110 has 54), every other one of each stage.
  const slant = n > 12;
  const every = Math.ceil(n / 27);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PLOT_HEIGHT;
  const HEIGHT = MARGIN.top + plotH + (slant ? 84 : 46);
  const band = plotW / n;
  const xAt = (i) => MARGIN.left + (i + 0.5) * band;
  const yAt = (error) => MARGIN.top + (plotH * (y.max - error * 100)) / (y.max - y.min);

  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "font-family": FONT, "font-size": 11, class: "study-svg" });
  svg.setAttribute("aria-label", summary(nets));
  // Downsampling blocks: a lighter band behind their column (Veit et al. single them out).
  blocks.forEach((b, i) => {
    if (b.downsampling) svg.append(el("rect", { x: MARGIN.left + i * band, y: MARGIN.top, width: band, height: plotH, fill: DOWNSAMPLING_FILL, "data-downsampling": b.block }));
  });
  // The y grid and its labels.
  for (let k = 0; k <= Math.round((y.max - y.min) / y.step); k++) {
    const v = y.min + k * y.step;
    const at = yAt(v / 100);
    svg.append(el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: at, y2: at, stroke: GRID }));
    svg.append(el("text", { x: MARGIN.left - 6, y: at + 4, "text-anchor": "end", fill: "#1d2330" }, String(v)));
  }
  svg.append(el("text", { transform: `translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)`, "text-anchor": "middle", "font-size": 12, "font-weight": 600 }, "test error %"));
  blocks.forEach((b, i) => {
    if (Number(b.block.split(".").pop()) % every) return;
    const x = xAt(i);
    const yText = MARGIN.top + plotH + 14;
    const attributes = slant ? { x, y: yText, "text-anchor": "end", transform: `rotate(-40 ${x} ${yText})` } : { x, y: yText, "text-anchor": "middle" };
    svg.append(el("text", { ...attributes, "font-weight": b.downsampling ? 700 : 400 }, b.block));
  });
  svg.append(el("text", { x: MARGIN.left + plotW / 2, y: HEIGHT - 4, "text-anchor": "middle", "font-size": 12, "font-weight": 600 }, "deleted block"));
  svg.append(el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH, stroke: "#adb5bd" }));

  for (const net of nets) {
    // The intact net's error: a dashed line across the plot.
    const intact = el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: yAt(net.report.intactError), y2: yAt(net.report.intactError), stroke: net.color, "stroke-width": 1.5, "stroke-dasharray": "6 4", "data-intact": net.name });
    intact.append(el("title", {}, `${net.label} intact: ${percent(net.report.intactError)}`));
    svg.append(intact);
    const points = net.report.blocks.map((b, i) => `${xAt(i).toFixed(1)},${yAt(b.top1Error).toFixed(1)}`).join(" ");
    svg.append(el("polyline", { points, fill: "none", stroke: net.color, "stroke-width": 1.5 }));
    net.report.blocks.forEach((b, i) => {
      const mark = el("circle", { cx: xAt(i), cy: yAt(b.top1Error), r: n > 27 ? 2.5 : 4, fill: net.color, class: "lesion-mark", "data-net": net.name, "data-block": b.block });
      mark.append(el("title", {}, `${net.label} without ${b.block}: ${percent(b.top1Error)} (intact ${percent(net.report.intactError)})`));
      svg.append(mark);
    });
  }
  $("lesion-plot").replaceChildren(svg);
  renderLegend(nets);
  renderTable(nets, blocks);
  $("lesion-status").textContent = statusText();
}

/** Which weights and how many test images the shown study measured. */
function statusText() {
  const images = Object.values(state.lesion.reports)[0].images;
  return `Your run at step ${state.lesion.step}, on ${images} test images.`;
}

/** What the plot shows, in words (the SVG's aria-label). */
function summary(nets) {
  const parts = nets.map(({ label, report }) => {
    const errors = report.blocks.map((b) => b.top1Error);
    return `${label}: intact ${percent(report.intactError)}, with one block deleted ${percent(Math.min(...errors))} to ${percent(Math.max(...errors))}`;
  });
  return `Lesion study: test error with each of ${nets[0].report.blocks.length} blocks deleted in turn. ${parts.join("; ")}.`;
}

function renderLegend(nets) {
  $("lesion-legend").replaceChildren(
    ...nets.map((net) => legendItem(`background:${net.color}`, `${net.label} (dashed: intact, ${percent(net.report.intactError)})`)),
    legendItem(`background:${DOWNSAMPLING_FILL};border:1px solid #ced4da`, "downsampling block"),
  );
}

/** The plot's numbers for screen readers: one row per deleted block, one column per net. */
function renderTable(nets, blocks) {
  const table = document.createElement("table");
  table.createCaption().textContent = "Test top-1 error (%) with each block deleted in turn";
  const head = table.createTHead().insertRow();
  for (const text of ["deleted block", "downsampling", ...nets.map((n) => n.label)]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = text;
    head.append(th);
  }
  const body = table.createTBody();
  const row = (cells) => {
    const tr = body.insertRow();
    for (const text of cells) tr.insertCell().textContent = text;
  };
  row(["none (intact)", "", ...nets.map((n) => percent(n.report.intactError))]);
  blocks.forEach((b, i) => row([b.block, b.downsampling ? "yes" : "no", ...nets.map((n) => percent(n.report.blocks[i].top1Error))]));
  $("lesion-table").replaceChildren(table);
}
