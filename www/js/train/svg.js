// What the Train view's inline SVG plots (lesion.js, gradients.js) share: the element factory,
// the coordinate width, the look of the uPlot charts above them, the legend's swatches and the
// nets of a study with their labels and colours. Drawing only.

import { colorOf, label, state } from "./state.js";

const NS = "http://www.w3.org/2000/svg";
// The plots' coordinate width (the SVG scales to the card's width).
export const WIDTH = 720;
export const GRID = "rgba(0,0,0,0.07)"; // uPlot's grid colour, as in the charts above
export const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/** An SVG element with its attributes and, optionally, its text. */
export function el(name, attributes = {}, text = null) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text != null) node.textContent = text;
  return node;
}

/** A legend entry: a coloured square (CSS `swatch`) and its text. */
export function legendItem(swatch, text) {
  const span = document.createElement("span");
  span.className = "study-key";
  const box = document.createElement("i");
  box.style.cssText = swatch;
  span.append(box, text);
  return span;
}

/** The nets of a study (`{ [name]: report }`) in the run's order, with their labels and colours. */
export function series(reports) {
  return Object.entries(reports).map(([name, report]) => {
    const net = state.nets.get(name);
    return { name, report, label: net ? label(net) : name, color: colorOf(name) };
  });
}
