// The Train view's saved session: the banner that offers the snapshot in IndexedDB after a
// reload, or after a lost GPU device or a crashed worker (then continued on the CPU in a fresh
// worker), and the restore itself.

import { restartWorker } from "../model.js";
import { $, worker } from "../shell.js";
import { loadCurves } from "../sessions.js";
import { applyOptions, begin, fail, resetView, setState } from "./controls.js";
import { datasetSpec, servedCifar, shapesSize, shapesSpec } from "./data.js";
import { maxStep, state, view } from "./state.js";
import { render } from "./status.js";

/**
 * Offers the session saved in IndexedDB: after a reload, or — with `failure` — after the GPU
 * device was lost or the worker crashed, when it continues on the CPU in a fresh worker.
 */
export async function offerSession(failure = null) {
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
      resetView();
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
