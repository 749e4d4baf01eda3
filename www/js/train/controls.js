// The Train view's controls: the experiment form (read and checked), the Start, Pause/Resume,
// Reset, Apply, Export, Use and Why residuals work buttons, and the view's state machine (idle,
// starting, running, paused, error) that enables them.

import { currentWeights, useWeights } from "../model.js";
import * as sessions from "../sessions.js";
import { $, showBackend, showError, showView, worker } from "../shell.js";
import { buildCharts, clearCharts } from "./charts.js";
import { datasetSpec } from "./data.js";
import { clearGradients } from "./gradients.js";
import { buildHeatmaps, clearHeatmaps } from "./heatmap.js";
import { clearLesion } from "./lesion.js";
import { clearResults } from "./results.js";
import { addNet, maxStep, state, view } from "./state.js";

const NET_SELECTS = ["train-net1", "train-net2", "train-net3"];
// What a family run can train, and each select's first choice ("" in the third: two nets).
// The fixed-size nets say how much more work a step is than ResNet-20's (multiply-adds).
const NET_CHOICES = [
  ["resnet", "ResNet"],
  ["plain", "Plain net (no shortcuts)"],
  ["preact", "Pre-activation ResNet"],
  ["wrn16_2", "Wide ResNet-16-2 (2.5× ResNet-20's work)"],
  ["wrn16_4", "Wide ResNet-16-4 (10×)"],
  ["resnext29_8x4d", "ResNeXt-29, 8×4d (6×)"],
  ["densenet_bc40_12", "DenseNet-BC-40, k = 12 (1.8×)"],
  ["densenet_bc100_12", "DenseNet-BC-100, k = 12 (7×)"],
];
NET_SELECTS.forEach((id, i) => {
  const choices = i === 2 ? [["", "(none)"], ...NET_CHOICES] : NET_CHOICES;
  $(id).replaceChildren(...choices.map(([value, text]) => new Option(text, value)));
  $(id).value = ["resnet", "plain", "preact"][i];
});

/** The architecture a family choice names at `depth`, e.g. ("preact", 20) → "preact_resnet20". */
function archOf(choice, depth) {
  return { resnet: `resnet${depth}`, plain: `plain${depth}`, preact: `preact_resnet${depth}` }[choice] ?? choice;
}

/** The family choice an architecture name is, if the form can show it (with its depth). */
function choiceOf(arch) {
  const m = /^(resnet|plain|preact_resnet)(\d+)$/.exec(arch);
  if (m) return { choice: m[1] === "preact_resnet" ? "preact" : m[1], depth: m[2] };
  return NET_CHOICES.some(([choice]) => choice === arch) ? { choice: arch } : null;
}

/** The form as the worker's training options. */
function options() {
  const mode = $("train-mode").value;
  const depth = Number($("train-depth").value);
  const choices = NET_SELECTS.map((id) => $(id).value).filter(Boolean);
  return {
    mode: mode === "compare" || mode === "family" ? mode : "single",
    plain: mode === "single-plain",
    // The family run's nets: "family" mode trains these architectures side by side.
    choices,
    nets: mode === "family" ? choices.map((c) => archOf(c, depth)) : undefined,
    depth,
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

/** What is wrong with the form, for people (empty when nothing is). */
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
  if (o.mode === "family" && new Set(o.nets).size !== o.nets.length) problems.push("choose two or three different nets");
  return problems;
}

/** Puts a restored session's options back into the form. */
export function applyOptions(o) {
  // The nets of the run (a fine-tuned net shows as one residual net).
  $("train-mode").value = o.mode === "compare" || o.mode === "family" ? o.mode : o.plain ? "single-plain" : "single";
  $("train-mode").dispatchEvent(new Event("change"));
  if (o.mode === "family") NET_SELECTS.forEach((id, i) => ($(id).value = o.choices?.[i] ?? ""));
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

/**
 * Fills the form from a run spec made natively (`resnet train --print-spec`, or a run
 * directory's config.json whose "spec" it is); names what the form cannot show.
 */
function applySpec(spec) {
  const skipped = [];
  const depth = /^(resnet|plain)(\d+)$/.exec(spec.arch ?? "resnet20");
  const depths = [...$("train-depth").options].map((o) => o.value);
  if (depth && depths.includes(depth[2])) $("train-depth").value = depth[2];
  else skipped.push(`architecture ${spec.arch}`);
  const plain = spec.plain || depth?.[1] === "plain";
  $("train-mode").value = spec.compare ? "compare" : plain ? "single-plain" : "single";
  if (spec.compareWith?.length) {
    const picked = [spec.arch ?? "resnet20", ...spec.compareWith].map(choiceOf);
    if (picked.every(Boolean) && picked.length <= 3 && !spec.compare) {
      $("train-mode").value = "family";
      NET_SELECTS.forEach((id, i) => ($(id).value = picked[i]?.choice ?? ""));
      const withDepth = picked.find((p) => p.depth);
      if (withDepth && depths.includes(withDepth.depth)) $("train-depth").value = withDepth.depth;
      // The first net is shown among the nets, not as the single-net depth.
      const unshown = skipped.indexOf(`architecture ${spec.arch}`);
      if (unshown >= 0) skipped.splice(unshown, 1);
    } else skipped.push(`the nets compared (${[spec.arch, ...spec.compareWith].join(", ")})`);
  }
  const o = spec.optimizer ?? {};
  if (o.lr != null) $("train-lr").value = o.lr;
  if (o.momentum != null) $("train-momentum").value = o.momentum;
  if (o.weightDecay != null) $("train-wd").value = o.weightDecay;
  $("train-nesterov").checked = Boolean(o.nesterov);
  const kind = spec.schedule?.kind ?? (spec.recipe === "custom" ? "constant" : "paper");
  if ([...$("train-schedule").options].some((x) => x.value === kind)) $("train-schedule").value = kind;
  else skipped.push(`the ${kind} schedule`);
  if (spec.batchSize != null) $("train-batch").value = spec.batchSize;
  if (spec.iterations != null) $("train-iterations").value = spec.iterations;
  else skipped.push("the default run length (set Iterations)");
  if (spec.seed != null) $("train-seed").value = spec.seed;
  if (spec.augment != null) $("train-augment").checked = spec.augment;
  if (spec.data?.kind === "shapes") {
    $("train-data").value = "shapes";
    if (spec.data.trainSize != null) $("train-size").value = spec.data.trainSize;
  } else if (spec.data) skipped.push(`the data (${spec.data.kind}: give it here)`);
  $("train-data").dispatchEvent(new Event("change"));
  $("train-mode").dispatchEvent(new Event("change"));
  $("train-note").textContent = skipped.length ? `Run spec loaded; not shown by this form: ${skipped.join(", ")}.` : "Run spec loaded.";
}

$("train-spec").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  e.target.value = "";
  if (!file) return;
  try {
    const json = JSON.parse(await file.text());
    applySpec(json.spec ?? json);
  } catch (err) {
    fail({ kind: "input", message: `${file.name}: not a run spec (${err.message})` });
  }
});

$("train-mode").addEventListener("change", () => {
  const finetune = $("train-mode").value === "finetune";
  $("family-field").hidden = $("train-mode").value !== "family";
  $("freeze-field").hidden = !finetune;
  $("train-depth").disabled = finetune;
  if (finetune) $("train-lr").value = 0.01;
});

$("train-start").addEventListener("click", () => start().catch(fail));
$("train-pause").addEventListener("click", async () => {
  if (state.running) await worker.call("trainPause").catch(fail);
  else await worker.call("trainResume").catch(fail);
});
$("train-reset").addEventListener("click", async () => {
  await worker.call("trainReset").catch(fail);
  // This tab's session only (other tabs' sessions stay); after the save of its last snapshot.
  await sessions.discard(sessions.tab.id).catch(() => {});
  resetView();
  setState("idle", "Reset. Press Start to train again.");
});
$("train-apply").addEventListener("click", async () => {
  const o = options();
  const problems = validate(o);
  if (problems.length) return fail({ kind: "input", message: problems.join("; ") });
  const queued = await worker.call("trainSet", { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.nesterov }).catch(fail);
  // Changes take effect at the next step boundary; "train-applied" says when they did.
  if (queued) $("train-note").textContent = `Queued lr ${o.lr}, momentum ${o.momentum}, weight decay ${o.weightDecay}: they apply from the next step.`;
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

/** Shows a failed request in the error box and the status line. */
export function fail(err) {
  showError(err);
  $("train-status").textContent = `${err.message}`;
  view.dataset.state = "error";
}

async function start() {
  showError(null);
  const o = options();
  const problems = validate(o);
  if (problems.length) throw { kind: "input", message: problems.join("; ") };
  // The run before this one stops and its last snapshot is saved under its own session id;
  // the new run gets a new id (the earlier session stays, for a reload of another tab).
  await worker.call("trainPause");
  sessions.beginRun();
  resetView();
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

/** Sets the view up for the nets the worker built (a new run or a restored one). */
export function begin(o, dataset, nets) {
  state.total = o.iterations;
  state.classes = dataset.classes;
  for (const info of nets) addNet(info);
  showBackend(nets[0].backend);
  $("train-note").textContent = `${dataset.name}: ${dataset.classes.length} classes. Same seed and data order for every net.`;
  buildCharts();
  buildHeatmaps();
}

/** Empties the charts, heatmaps, results and progress, and forgets the nets. */
export function resetView() {
  clearCharts();
  state.nets.clear();
  clearHeatmaps();
  clearResults();
  clearGradients();
  clearLesion();
  $("train-progress").style.width = "0%";
}

/** The view's state (`#view-train[data-state]`), the status line and the buttons it enables. */
export function setState(name, text) {
  view.dataset.state = name;
  state.running = name === "running";
  if (text) $("train-status").textContent = text;
  // While Why residuals work measures, the run stays as it is: both studies measure its weights.
  const analysing = state.analysing;
  $("train-start").disabled = name === "running" || name === "starting" || analysing;
  $("train-pause").disabled = !(name === "running" || name === "paused") || analysing;
  $("train-pause").textContent = name === "paused" ? "Resume" : "Pause";
  $("train-reset").disabled = name === "idle" || name === "starting" || analysing;
  $("train-apply").disabled = !(name === "running" || name === "paused");
  const trained = state.nets.size > 0 && maxStep() > 0;
  $("train-export").disabled = !trained;
  $("train-use").disabled = !trained;
  $("train-why").disabled = !trained || analysing;
  $("train-why").textContent = analysing ? "Why residuals work: measuring…" : "Why residuals work";
}
