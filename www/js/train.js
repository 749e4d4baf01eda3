// The Train view: controls, live charts (uPlot), the gradient heatmap, test examples and the
// confusion matrix. DOM and messages only: the training runs in the worker (worker.js).

import uPlot from "../vendor/uPlot.esm.js";
import { currentWeights, restartWorker, showBackend, showError, showView, useWeights, worker } from "./app.js";
import { loadCurves, saveCurves } from "./sessions.js";

const $ = (id) => document.getElementById(id);
const view = $("view-train");
const COLORS = { residual: "#3b5bdb", plain: "#e8590c", single: "#2b8a3e" };
const SMOOTH = 10; // steps in the displayed moving average

const state = {
  running: false,
  nets: new Map(), // name -> { info, loss[], error[], lr[], speed[], testError[], grads[][] }
  total: 0,
  dataset: null, // { kind, files?, key }
  charts: {},
  lastSpeed: 0,
};

// ------------------------------------------------------------------ controls

function options() {
  const mode = $("train-mode").value;
  return {
    mode: mode === "compare" ? "compare" : "single",
    plain: mode === "single-plain",
    depth: Number($("train-depth").value),
    lr: Number($("train-lr").value),
    batchSize: Number($("train-batch").value),
    momentum: Number($("train-momentum").value),
    weightDecay: Number($("train-wd").value),
    nesterov: $("train-nesterov").checked,
    schedule: $("train-schedule").value,
    iterations: Number($("train-iterations").value),
    seed: Number($("train-seed").value),
    augment: $("train-augment").checked,
    device: $("device-select").value,
    stepsPerCall: 2,
    evalEvery: 100,
    evalImages: 500,
    snapshotSeconds: 30,
  };
}

function validate(o) {
  const problems = [];
  if (!(o.lr > 0 && o.lr < 10)) problems.push("the learning rate must be between 0 and 10");
  if (!(o.batchSize >= 2 && o.batchSize <= 512)) problems.push("the batch must be between 2 and 512 images");
  if (!(o.iterations >= 10)) problems.push("train for at least 10 iterations");
  if (!(o.momentum >= 0 && o.momentum < 1)) problems.push("momentum must be in [0, 1)");
  const shapes = Number($("train-size").value);
  if ($("train-data").value === "shapes" && !(Number.isInteger(shapes) && shapes >= 16 && shapes <= 50000))
    problems.push("Shapes training images must be a whole number from 16 to 50000");
  if (!(o.weightDecay >= 0)) problems.push("weight decay cannot be negative");
  return problems;
}

$("train-mode").addEventListener("change", () => {
  const finetune = $("train-mode").value === "finetune";
  $("freeze-field").hidden = !finetune;
  $("train-depth").disabled = finetune;
  if (finetune) $("train-lr").value = 0.01;
});

// CIFAR-10 put in www/data by `resnet data fetch cifar10 --to www/data` is offered directly.
const SERVED = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"];
fetch("data/cifar-10-batches-bin/test_batch.bin", { method: "HEAD" })
  .then((r) => {
    if (r.ok) document.querySelector('#train-data option[value="served"]').hidden = false;
  })
  .catch(() => {});

async function servedCifar() {
  $("train-status").textContent = "Downloading CIFAR-10 from this server…";
  const files = [];
  for (const name of SERVED) {
    const response = await fetch(`data/cifar-10-batches-bin/${name}`);
    if (!response.ok) throw { kind: "data", message: `data/cifar-10-batches-bin/${name}: ${response.status}` };
    files.push({ name, bytes: await response.arrayBuffer() });
  }
  return { kind: "cifar", files, key: "served-cifar10" };
}

$("train-data").addEventListener("change", () => {
  const kind = $("train-data").value;
  $("data-drop").hidden = kind === "shapes" || kind === "served";
  $("shapes-size-field").hidden = kind !== "shapes";
  $("data-drop-text").textContent =
    kind === "cifar" ? "Drop CIFAR-10 data_batch_*.bin / test_batch.bin (or CIFAR-100 train.bin / test.bin) here" : "Drop a folder with one sub-folder of images per class here";
  state.dataset = kind === "shapes" || kind === "served" ? { kind } : null;
});
state.dataset = { kind: "shapes" };

/** Reads dropped files, walking into folders, as `{ name: "dir/file", bytes }`. */
async function readDropped(items) {
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((ok, bad) => entry.file(ok, bad));
      out.push({ name: prefix + file.name, bytes: await file.arrayBuffer() });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const item of items) {
    const entry = item.webkitGetAsEntry?.();
    if (entry) await walk(entry, "");
  }
  return out;
}

const dataDrop = $("data-drop");
for (const type of ["dragenter", "dragover"]) {
  dataDrop.addEventListener(type, (e) => {
    e.preventDefault();
    dataDrop.classList.add("over");
  });
}
dataDrop.addEventListener("dragleave", () => dataDrop.classList.remove("over"));
dataDrop.addEventListener("drop", async (e) => {
  e.preventDefault();
  dataDrop.classList.remove("over");
  useDataFiles(await readDropped([...e.dataTransfer.items]));
});
// The same through file pickers (a folder picker gives "folder/class/file.png" paths).
for (const id of ["data-files", "data-folder"]) {
  $(id).addEventListener("change", async (e) => {
    const picked = [...e.target.files];
    useDataFiles(await Promise.all(picked.map(async (f) => ({ name: f.webkitRelativePath || f.name, bytes: await f.arrayBuffer() }))));
    e.target.value = "";
  });
}

function useDataFiles(files) {
  const kind = $("train-data").value;
  const bytes = files.reduce((n, f) => n + f.bytes.byteLength, 0);
  state.dataset = { kind, files, key: `${kind}:${files.map((f) => f.name).sort().join(",")}` };
  $("data-drop-text").textContent = `${files.length} file${files.length === 1 ? "" : "s"} (${(bytes / 1e6).toFixed(1)} MB) ready`;
}

$("train-start").addEventListener("click", () => start().catch(fail));
$("train-pause").addEventListener("click", async () => {
  if (state.running) await worker.call("trainPause").catch(fail);
  else await worker.call("trainResume").catch(fail);
});
$("train-reset").addEventListener("click", async () => {
  await worker.call("trainReset").catch(fail);
  resetCharts();
  setState("idle", "Reset. Press Start to train again.");
});
$("train-apply").addEventListener("click", async () => {
  const o = options();
  const problems = validate(o);
  if (problems.length) return fail({ kind: "input", message: problems.join("; ") });
  await worker.call("trainSet", { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.nesterov }).catch(fail);
  $("train-note").textContent = `Applied lr ${o.lr}, momentum ${o.momentum}, weight decay ${o.weightDecay} at step ${maxStep()}.`;
});
$("train-export").addEventListener("click", async () => {
  const net = state.nets.has("residual") ? "residual" : [...state.nets.keys()][0];
  const { bytes, arch, step } = await worker.call("trainExport", { net, f16: false });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  link.download = `${arch}-step${step}.bpk`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  $("train-note").textContent = `Exported ${arch} at step ${step} (${(bytes.byteLength / 1e6).toFixed(2)} MB): load it in Classify or with \`resnet eval --weights\`.`;
});
$("train-use").addEventListener("click", async () => {
  const net = state.nets.has("residual") ? "residual" : [...state.nets.keys()][0];
  const { bytes, arch, step } = await worker.call("trainExport", { net, f16: false });
  showView("classify");
  await useWeights(bytes, `Trained here: ${arch}, step ${step}`);
});

function fail(err) {
  showError(err);
  $("train-status").textContent = `${err.message}`;
  view.dataset.state = "error";
}

async function datasetSpec() {
  if (!state.dataset) throw Object.assign(new Error("drop the dataset files first"), { kind: "data" });
  const d = state.dataset;
  if (d.kind === "served") return servedCifar();
  return d.kind === "shapes" ? shapesSpec(Number($("train-size").value)) : { kind: d.kind, key: d.key, files: d.files };
}

/** The embedded dataset with `trainSize` training images; the key lets a restore check it. */
function shapesSpec(trainSize) {
  return { kind: "shapes", key: `shapes:${trainSize}`, trainSize };
}

/** The training-set size in a Shapes key ("shapes:512" → 512), or null for other data. */
function shapesSize(key) {
  return key.startsWith("shapes:") ? Number(key.slice("shapes:".length)) : null;
}

async function start() {
  showError(null);
  const o = options();
  const problems = validate(o);
  if (problems.length) throw { kind: "input", message: problems.join("; ") };
  resetCharts();
  const mode = $("train-mode").value;
  let fineTune = null;
  if (mode === "finetune") {
    const bytes = currentWeights();
    if (!bytes) throw { kind: "weights", message: "load a model in the Classify view first" };
    fineTune = { bytes, freezeBackbone: $("train-freeze").checked };
  }
  setState("starting", "Preparing the data and the networks…");
  const { dataset, nets } = await worker.call("trainStart", { options: o, dataset: await datasetSpec(), fineTune });
  begin(o, dataset, nets);
}

function begin(o, dataset, nets) {
  state.total = o.iterations;
  state.classes = dataset.classes;
  for (const info of nets) addNet(info);
  showBackend(nets[0].backend);
  $("train-note").textContent = `${dataset.name}: ${dataset.classes.length} classes. Same seed and data order for every net.`;
  buildCharts();
  buildHeatmaps();
}

function setState(name, text) {
  view.dataset.state = name;
  state.running = name === "running";
  if (text) $("train-status").textContent = text;
  $("train-start").disabled = name === "running" || name === "starting";
  $("train-pause").disabled = !(name === "running" || name === "paused");
  $("train-pause").textContent = name === "paused" ? "Resume" : "Pause";
  $("train-reset").disabled = name === "idle" || name === "starting";
  $("train-apply").disabled = !(name === "running" || name === "paused");
  const trained = state.nets.size > 0 && maxStep() > 0;
  $("train-export").disabled = !trained;
  $("train-use").disabled = !trained;
}
setState("idle");

// ------------------------------------------------------------------ data from the worker

function addNet(info) {
  state.nets.set(info.name, { info, loss: [], error: [], lr: [], speed: [], testError: [], grads: [] });
}

function maxStep() {
  return Math.max(0, ...[...state.nets.values()].map((n) => n.info.stepCount ?? 0));
}

function label(net) {
  const depth = net.info.arch.replace(/\D/g, "");
  return net.info.name === "plain" ? `plain-${depth}` : net.info.name === "single" ? `${net.info.arch} (fine-tuned)` : `ResNet-${depth}`;
}

worker.on("train-progress", (data) => {
  const net = state.nets.get(data.net);
  if (!net) return;
  net.info = data.info;
  for (const s of data.steps) {
    net.loss[s.step - 1] = s.loss;
    net.error[s.step - 1] = s.top1Error;
    net.lr[s.step - 1] = s.lr;
    net.speed[s.step - 1] = data.imagesPerSecond;
    net.grads.push(s.gradNorms);
  }
  state.lastSpeed = data.imagesPerSecond;
  view.dataset[`steps${data.net[0].toUpperCase()}${data.net.slice(1)}`] = String(net.info.stepCount);
  scheduleRender();
});

worker.on("train-eval", ({ net: name, step, report }) => {
  const net = state.nets.get(name);
  if (!net) return;
  net.testError[step - 1] = report.top1Error;
  net.lastEval = report;
  renderConfusion(name, report);
  scheduleRender();
});

worker.on("train-examples", ({ net, predictions, images }) => {
  if (net === "plain" && state.nets.has("residual")) return; // show the residual net's
  renderExamples(net, predictions, images);
});

worker.on("train-status", ({ state: s, message, net, kind }) => {
  if (s === "running") setState("running", "Training…");
  else if (s === "paused") setState("paused", `Paused at step ${maxStep()}. Press Resume to continue.`);
  else if (s === "finished") setState("paused", `Finished: ${message}.`);
  else if (s === "diverged") {
    $("train-note").textContent = `${label(state.nets.get(net))} diverged and was stopped: ${message}`;
    showError({ kind: "input", message: `${label(state.nets.get(net))}: ${message}` });
  } else if (s === "error") {
    setState("paused", message);
    const hint = kind === "device" ? " Try a smaller batch, or the CPU device." : "";
    showError({ kind: kind ?? "internal", message: message + hint });
    // The GPU went away or the wasm instance broke: offer the last snapshot on the CPU.
    if (kind === "device" || kind === "internal") offerSession({ message });
  }
});
worker.on("crash", (err) => {
  if (state.running || view.dataset.state === "running") offerSession({ message: err.message });
});

worker.on("train-snapshot", ({ step, savedAt }) => {
  const curves = {};
  for (const [name, net] of state.nets) {
    curves[name] = { loss: net.loss, error: net.error, lr: net.lr, speed: net.speed, testError: net.testError, grads: net.grads.slice(-COLUMNS) };
  }
  saveCurves(curves).catch(() => {});
  $("train-note").dataset.snapshot = String(step);
  $("train-note").title = `Session saved at step ${step} (${new Date(savedAt).toLocaleTimeString()})`;
});

// ------------------------------------------------------------------ rendering

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function smooth(values) {
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

function render() {
  const nets = [...state.nets.values()];
  if (!nets.length) return;
  const n = Math.max(...nets.map((net) => net.loss.length));
  const xs = Array.from({ length: n }, (_, i) => i + 1);
  const pad = (a) => Array.from({ length: n }, (_, i) => a[i] ?? null);
  state.charts.loss?.setData([xs, ...nets.map((net) => pad(smooth(net.loss)))]);
  state.charts.error?.setData([xs, ...nets.map((net) => pad(smooth(net.error)).map((v) => (v == null ? null : v * 100))), ...nets.map((net) => pad(net.testError).map((v) => (v == null ? null : v * 100)))]);
  state.charts.lr?.setData([xs, pad(nets[0].lr)]);
  state.charts.speed?.setData([xs, ...nets.map((net) => pad(net.speed))]);
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

function resetCharts() {
  for (const chart of Object.values(state.charts)) chart.destroy();
  state.charts = {};
  state.nets.clear();
  $("heatmaps").replaceChildren();
  $("examples").replaceChildren();
  $("confusion").replaceChildren();
  $("examples-net").textContent = "";
  $("confusion-net").textContent = "";
  $("train-progress").style.width = "0%";
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

function buildCharts() {
  const nets = [...state.nets.values()];
  const line = (net, extra = {}) => ({ label: label(net), stroke: COLORS[net.info.name], width: 1.5, spanGaps: true, ...extra });
  state.charts.loss = chart("chart-loss", nets.map((n) => line(n)), { log: $("log-scale").checked, yLabel: "loss" });
  state.charts.error = chart(
    "chart-error",
    [...nets.map((n) => line(n, { label: `${label(n)} train` })), ...nets.map((n) => line(n, { label: `${label(n)} test`, dash: [6, 4], points: { show: true, size: 5 } }))],
    { yLabel: "top-1 error %" },
  );
  state.charts.lr = chart("chart-lr", [{ label: "learning rate", stroke: "#495057", width: 1.5 }], { log: true, yLabel: "lr" });
  state.charts.speed = chart("chart-speed", nets.map((n) => line(n)), { yLabel: "img/s" });
  view.dataset.charts = "ready";
}

$("log-scale").addEventListener("change", () => {
  if (!state.nets.size) return;
  const nets = [...state.nets.values()];
  state.charts.loss.destroy();
  state.charts.loss = chart("chart-loss", nets.map((n) => ({ label: label(n), stroke: COLORS[n.info.name], width: 1.5, spanGaps: true })), { log: $("log-scale").checked, yLabel: "loss" });
  scheduleRender();
});

// The heatmap: one row per layer, one column per step (the latest COLUMNS), colour = log of
// the gradient norm on a scale shared by both nets so they compare directly.
const COLUMNS = 400;

function buildHeatmaps() {
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
    caption.innerHTML = `<span style="color:${COLORS[net.info.name]}">■</span> ${label(net)} — ${net.info.layers.length} layers`;
    figure.append(caption, canvas);
    box.append(figure);
    net.canvas = canvas;
  }
  const legend = document.createElement("div");
  legend.className = "heat-legend muted small";
  legend.id = "heat-legend";
  box.append(legend);
}

function heatColor(t) {
  // Dark blue → teal → yellow (viridis-like), t in [0, 1].
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(0.9999, Math.max(0, t)) * (stops.length - 1);
  const i = Math.floor(x);
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}

function renderHeatmaps() {
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
  $("heat-legend").textContent = `colour scale: gradient L2 norm from 1e${lo.toFixed(1)} (dark) to 1e${hi.toFixed(1)} (bright)${state.nets.size > 1 ? ", shared by both nets" : ""}; the last ${COLUMNS} steps`;
}

function renderExamples(net, predictions, images) {
  const classes = state.classes ?? [];
  $("examples-net").textContent = `(${label(state.nets.get(net))}, step ${state.nets.get(net).info.stepCount})`;
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

function renderConfusion(name, report) {
  if (name === "plain" && state.nets.has("residual")) return;
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

// ------------------------------------------------------------------ sessions & visibility

/**
 * Offers the session saved in IndexedDB: after a reload, or — with `failure` — after the GPU
 * device was lost or the worker crashed, when it continues on the CPU in a fresh worker.
 */
async function offerSession(failure = null) {
  const session = await worker.call("trainSession").catch(() => null);
  if (!session) {
    if (failure) setState("paused", `Training stopped: ${failure.message}. No snapshot was saved yet: press Start to begin again.`);
    return;
  }
  $("session-banner").hidden = false;
  const when = new Date(session.savedAt).toLocaleString();
  const shapes = shapesSize(session.datasetKey);
  const needsFiles = !shapes && session.datasetKey !== "served-cifar10" && !failure;
  const what = `${session.nets.join(" + ")}, depth ${session.options.depth}`;
  $("session-text").textContent = failure
    ? `Training stopped: ${failure.message}. The snapshot saved at step ${session.step ?? "?"} (${what}) is safe and can continue on the CPU.`
    : `A training session (${what}) was saved on ${when}.${needsFiles ? " Drop the same dataset files, then restore." : ""}`;
  $("session-restore").textContent = failure ? "Continue on the CPU" : "Restore and continue";
  $("session-restore").onclick = async () => {
    try {
      const dataset =
        shapes ? shapesSpec(shapes) : session.datasetKey === "served-cifar10" ? await servedCifar() : await datasetSpec();
      resetCharts();
      setState("starting", "Restoring the saved session…");
      // A lost device (or a panicked wasm instance) cannot be reused: a fresh worker, on the CPU.
      if (failure) await restartWorker("cpu");
      const restored = await worker.call("trainRestore", { dataset, device: failure ? "cpu" : undefined });
      applyOptions(restored.options);
      if (shapes) {
        $("train-data").value = "shapes";
        $("train-size").value = shapes;
      }
      begin(restored.options, restored.dataset, restored.nets);
      const curves = await loadCurves().catch(() => null);
      for (const [name, net] of state.nets) Object.assign(net, curves?.[name] ?? {});
      render();
      $("session-banner").hidden = true;
      setState("paused", `Restored at step ${maxStep()}. Press Resume to continue.`);
      view.dataset.restored = String(maxStep());
    } catch (err) {
      fail(err);
    }
  };
  $("session-discard").onclick = async () => {
    await worker.call("trainReset");
    $("session-banner").hidden = true;
  };
}

function applyOptions(o) {
  $("train-depth").value = String(o.depth);
  $("train-lr").value = o.lr;
  $("train-batch").value = o.batchSize;
  $("train-momentum").value = o.momentum;
  $("train-wd").value = o.weightDecay;
  $("train-schedule").value = o.schedule;
  $("train-iterations").value = o.iterations;
  $("train-seed").value = o.seed;
  $("train-augment").checked = o.augment;
}

document.addEventListener("visibilitychange", () => {
  $("throttle-banner").hidden = !(document.hidden && state.running);
});

offerSession();

// Read-only view of the state for the end-to-end tests, and their fault injection.
window.__train = state;
window.__simulateDeviceLoss = () => worker.call("trainSimulateDeviceLoss");
