// The Train view's results on the test set: test images with their top-3 predictions, and the
// confusion matrix of the latest evaluation (of the run's first net: the residual one beside its twin).

import { $ } from "../shell.js";
import { label, state } from "./state.js";

/** Whether `name`'s results are shown: the first net's (the residual net beside its twin). */
const shown = (name) => [...state.nets.keys()][0] === name;

export function renderExamples(name, predictions, images) {
  if (!shown(name)) return;
  const classes = state.classes ?? [];
  const net = state.nets.get(name);
  $("examples-net").textContent = `(${label(net)}, step ${net.info.stepCount})`;
  $("examples").replaceChildren(
    ...predictions.map((p, i) => {
      const cell = document.createElement("figure");
      const canvas = document.createElement("canvas");
      canvas.width = 32;
      canvas.height = 32;
      canvas.getContext("2d").putImageData(new ImageData(images[i].rgba, 32, 32), 0, 0);
      const caption = document.createElement("figcaption");
      caption.append(
        ...p.top.map((t, rank) => {
          const line = document.createElement("div");
          line.className = t.index === p.label ? "right" : rank === 0 ? "wrong" : "";
          line.textContent = `${classes[t.index] ?? t.index} ${(t.probability * 100).toFixed(0)}%`;
          return line;
        }),
      );
      cell.className = p.top[0].index === p.label ? "ok" : "bad";
      cell.title = `true class: ${classes[p.label] ?? p.label}`;
      cell.append(canvas, caption);
      return cell;
    }),
  );
}

export function renderConfusion(name, report) {
  if (!shown(name)) return;
  const classes = state.classes ?? report.confusion.map((_, i) => String(i));
  if (classes.length > 20) {
    $("confusion").textContent = `${classes.length} classes: test error ${(report.top1Error * 100).toFixed(1)}%, top-5 ${(report.top5Error * 100).toFixed(1)}%`;
    return;
  }
  $("confusion-net").textContent = `(${label(state.nets.get(name))}, ${report.images} test images, error ${(report.top1Error * 100).toFixed(1)}%)`;
  const max = Math.max(1, ...report.confusion.flat());
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  head.insertCell().textContent = "true \\ predicted";
  for (const c of classes) head.insertCell().textContent = c;
  const body = table.createTBody();
  report.confusion.forEach((row, i) => {
    const tr = body.insertRow();
    tr.insertCell().textContent = classes[i];
    row.forEach((v, j) => {
      const td = tr.insertCell();
      td.textContent = v;
      const alpha = v / max;
      td.style.background = i === j ? `rgba(43,138,62,${alpha})` : `rgba(201,42,42,${alpha})`;
      td.style.color = alpha > 0.5 ? "#fff" : "";
    });
  });
  $("confusion").replaceChildren(table);
}

export function clearResults() {
  $("examples").replaceChildren();
  $("confusion").replaceChildren();
  $("examples-net").textContent = "";
  $("confusion-net").textContent = "";
}
