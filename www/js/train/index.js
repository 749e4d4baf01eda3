// The Train view (an entry point): wires the worker's training messages to the view's state
// and modules, and publishes what the view shows as the `resnet:train` event. DOM and messages
// only: the training runs in the worker (worker.js), which forwards what the wasm package
// decides.

import { $, showError, worker } from "../shell.js";
import * as sessions from "../sessions.js";
import { rebuildLossChart } from "./charts.js";
import { fail, setState } from "./controls.js";
import { gradientStudy } from "./gradients.js";
import { COLUMNS } from "./heatmap.js";
import { lesionStudy } from "./lesion.js";
import { renderConfusion, renderExamples } from "./results.js";
import { offerSession } from "./session.js";
import { label, maxStep, state, view } from "./state.js";
import { scheduleRender } from "./status.js";

/**
 * The `resnet:train` event: after each training progress, evaluation and status message of the
 * worker, and when each study of Why residuals work ends, `#view-train` dispatches a bubbling
 * `CustomEvent("resnet:train")` whose `detail` is a snapshot of what the view then shows:
 *
 *   {
 *     state,  // the view's state: "idle", "starting", "running", "paused" or "error"
 *     step,   // the latest step of any net
 *     total,  // the iterations of the run
 *     nets: { [name]: {      // "residual" and "plain" side by side, or one of them, or "single"
 *       info,                // the worker's NetInfo: name, arch, stepCount, epoch, lr, layers, backend…
 *       loss, error,         // training loss and top-1 error per step (index step - 1; holes are gaps)
 *       testError,           // test top-1 error at the steps evaluated (index step - 1)
 *       lastEval,            // the latest EvalReport (top1Error, top5Error, loss, images, confusion)
 *     } },
 *     gradients,  // the latest gradient correlation (Balduzzi et al. 2017), null before one (or
 *                 // after a reset): { [name]: GradientCorrelation } with the same net names, each
 *                 // the wasm package's { images, noise, blocks: [{ block: "layer2.0", depth,
 *                 // correlation }] } (depth: weighted layers from the input; correlation of the
 *                 // input gradients of an image and a nearby copy, in [-1, 1]; up to 12 blocks in
 *                 // forward order), measured at the step it was asked
 *     lesion,  // the latest lesion study (Veit et al. 2016), null before one (or after a reset):
 *              // { [name]: LesionReport } with the same net names, each the wasm package's
 *              // { images, intactError, blocks: [{ block: "layer2.0", downsampling, top1Error }] }
 *              // (errors in [0, 1], blocks in forward order), measured at the step it was asked
 *   }
 *
 * The arrays (and the studies' reports) are copies: listeners may keep them. The page does not listen to it itself; it is
 * for whatever embeds or tests the page (tests/e2e/train.mjs records it).
 */
function publish() {
  const nets = {};
  for (const [name, net] of state.nets) {
    nets[name] = { info: net.info, loss: net.loss.slice(), error: net.error.slice(), testError: net.testError.slice(), lastEval: net.lastEval ?? null };
  }
  const gradients = state.gradients ? structuredClone(state.gradients.reports) : null;
  const lesion = state.lesion ? structuredClone(state.lesion.reports) : null;
  const detail = { state: view.dataset.state, step: maxStep(), total: state.total, nets, gradients, lesion };
  view.dispatchEvent(new CustomEvent("resnet:train", { detail, bubbles: true }));
}

worker.on("train-progress", (data) => {
  const net = state.nets.get(data.net);
  if (net) {
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
  }
  publish();
});

worker.on("train-eval", ({ net: name, step, report }) => {
  const net = state.nets.get(name);
  if (net) {
    net.testError[step - 1] = report.top1Error;
    net.lastEval = report;
    renderConfusion(name, report);
    scheduleRender();
  }
  publish();
});

worker.on("train-examples", ({ net, predictions, images }) => renderExamples(net, predictions, images));

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
  publish();
});

worker.on("crash", (err) => {
  if (state.running || view.dataset.state === "running") offerSession({ message: err.message });
});

worker.on("train-applied", ({ step, description }) => {
  $("train-note").textContent = `Applied ${description} from step ${step}.`;
  view.dataset.applied = String(step);
});

// The worker's snapshot of every net, saved with the curves as they are now (the progress
// before it has arrived, the next has not), in one transaction, under this tab's session id.
worker.on("train-snapshot", (snapshot) => {
  const curves = {};
  for (const [name, net] of state.nets) {
    curves[name] = { loss: net.loss.slice(), error: net.error.slice(), lr: net.lr.slice(), speed: net.speed.slice(), testError: net.testError.slice(), grads: net.grads.slice(-COLUMNS) };
  }
  const id = sessions.tab.id ?? sessions.beginRun();
  sessions
    .save(id, { ...snapshot, curves })
    .then((generation) => {
      $("train-note").dataset.snapshot = String(snapshot.step);
      $("train-note").title = `Session saved at step ${snapshot.step} (${new Date(generation).toLocaleTimeString()})`;
    })
    .catch((err) => {
      $("train-note").textContent = `The session could not be saved at step ${snapshot.step} (${err?.message ?? err}); training goes on, and an export keeps the model.`;
    });
});

// Why residuals work: the gradient correlation, then the lesion study, of the same weights (the
// worker pauses a running loop for the first; the run's buttons stay off until both answer).
// The quick one first, so its plot shows while the lesion study (minutes on a CPU) measures; the
// view publishes each as it arrives.
$("train-why").addEventListener("click", async () => {
  state.analysing = true;
  setState(view.dataset.state);
  try {
    await gradientStudy();
    publish();
    await lesionStudy();
  } catch (err) {
    fail(err);
  } finally {
    state.analysing = false;
    setState(view.dataset.state);
    publish();
  }
});

$("log-scale").addEventListener("change", () => {
  if (rebuildLossChart()) scheduleRender();
});

document.addEventListener("visibilitychange", () => {
  $("throttle-banner").hidden = !(document.hidden && state.running);
});

setState("idle");
offerSession();
