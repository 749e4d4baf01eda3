// The Train view's saved session: the banner that offers a snapshot kept in IndexedDB after a
// reload (this tab's own session, else the most recently saved one of any tab), or after a lost
// GPU device or a crashed worker (then continued on the CPU in a fresh worker), and the restore
// itself. A generation the page cannot read, or whose bytes the wasm package refuses, is named
// as damaged and the previous generation is restored instead.

import { restartWorker } from "../model.js";
import { $, showError, worker } from "../shell.js";
import * as sessions from "../sessions.js";
import { applyOptions, begin, fail, resetView, setState } from "./controls.js";
import { datasetSpec, servedCifar, shapesSize, shapesSpec } from "./data.js";
import { maxStep, state, view } from "./state.js";
import { render } from "./status.js";

/** A save's time: the time of day when it was today, else the date too. */
function when(ms) {
  const date = new Date(ms);
  return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
}
const stepOf = (s) => (s.step == null ? "?" : s.step);
const what = (s) => `${s.nets.map((n) => n.name).join(" + ")}, depth ${s.options.depth}`;
/** The wasm package's reason, kept short enough for a banner. */
const short = (text) => (text.length > 160 ? `${text.slice(0, 157)}…` : text);

/** Shows the banner: its text, whether it warns, and which of its buttons are offered. */
function banner(text, { warn = false, restore = null, discard = false, dismiss = false } = {}) {
  $("session-banner").hidden = false;
  $("session-banner").classList.toggle("warn", warn);
  $("session-text").textContent = text;
  $("session-restore").hidden = !restore;
  if (restore) $("session-restore").textContent = restore;
  $("session-discard").hidden = !discard;
  $("session-dismiss").hidden = !dismiss;
}

function hideBanner() {
  $("session-banner").hidden = true;
}

/** "The newest snapshot (step 12, saved 10:31:02) is damaged and cannot be restored." */
function damageText(damaged) {
  const which = damaged.map((d, i) => `${i === 0 ? "the newest snapshot" : "the one before it"} (${d.step != null ? `step ${d.step}, ` : ""}saved ${when(d.savedAt)})`);
  return `${capital(which.join(" and "))} ${damaged.length > 1 ? "are" : "is"} damaged and cannot be restored.`;
}

/** What the wasm package (or the page, for a record it did not write) said was wrong. */
function details(damaged) {
  return ` Details: ${damaged.map((d) => short(d.reason).replace(/\.$/, "")).join("; ")}.`;
}

const capital = (text) => text[0].toUpperCase() + text.slice(1);

/**
 * Offers the saved session: after a reload, or — with `failure` — after the GPU device was
 * lost or the worker crashed, when it continues on the CPU in a fresh worker.
 */
export async function offerSession(failure = null) {
  // After a failure, only this tab's own run (another tab's is not the one that stopped).
  const found = await sessions.offered({ ownOnly: Boolean(failure) }).catch(() => null);
  // The newest generation the page can read (a record it did not write counts as damaged);
  // its bytes are checked by the wasm package when it is restored.
  const damaged = [];
  let first = null;
  for (const [i, generation] of (found?.generations ?? []).entries()) {
    const loaded = await sessions.load(found.id, generation);
    if (loaded.ok) {
      first = { index: i, session: loaded.session };
      break;
    }
    damaged.push({ generation, savedAt: generation, step: null, reason: loaded.reason, unread: loaded.unread });
  }
  if (!found) {
    hideBanner();
    if (failure) setState("paused", `Training stopped: ${failure.message}. No snapshot was saved yet: press Start to begin again.`);
    return;
  }
  if (!first) return unrestorable(found, damaged, failure);
  const session = first.session;
  const needsFiles = !shapesSize(session.datasetKey) && session.datasetKey !== "served-cifar10" && !failure;
  const whose = found.own ? "This tab's training session" : "The most recently saved training session";
  const files = needsFiles ? " Drop the same dataset files, then restore." : "";
  const text = failure
    ? `Training stopped: ${failure.message}. The snapshot saved at step ${stepOf(session)} (${what(session)}) is safe and can continue on the CPU.${damaged.length ? ` ${damageText(damaged)}${details(damaged)}` : ""}`
    : damaged.length
      ? `${damageText(damaged)} The previous snapshot of this session (${what(session)}, step ${stepOf(session)}, saved ${when(session.savedAt)}) can be restored instead.${files}${details(damaged)}`
      : `${whose} (${what(session)}): step ${stepOf(session)}, saved ${when(session.savedAt)}.${files}`;
  banner(text, { warn: damaged.length > 0, restore: failure ? "Continue on the CPU" : damaged.length ? `Restore step ${stepOf(session)}` : "Restore and continue", discard: true });
  $("session-restore").onclick = async () => {
    $("session-restore").disabled = true; // one restore at a time
    await restore(found, first, damaged, failure).catch(fail);
    $("session-restore").disabled = false;
  };
  $("session-discard").onclick = async () => {
    await worker.call("trainReset").catch(() => {});
    await sessions.discard(found.id).catch(() => {});
    hideBanner();
  };
  $("session-dismiss").onclick = hideBanner;
}

/** Every generation kept is damaged: say so, and offer to discard the session. */
function unrestorable(found, damaged, failure) {
  const stopped = failure ? `Training stopped: ${failure.message}. ` : "";
  banner(`${stopped}${damageText(damaged)} No older snapshot is kept of this training session: discard it, then press Start to train again.${details(damaged)}`, { warn: true, discard: true });
  $("session-discard").onclick = async () => {
    await worker.call("trainReset").catch(() => {});
    await sessions.discard(found.id).catch(() => {});
    hideBanner();
  };
  setState(state.nets.size ? "paused" : "idle", "The saved session is damaged and cannot be restored.");
}

/**
 * Restores generation `first` of `found`, else (its bytes refused as damaged, or unreadable)
 * each older generation in turn; the banner then names what was damaged.
 */
async function restore(found, first, damaged, failure) {
  const device = failure ? "cpu" : undefined;
  // A lost device (or a panicked wasm instance) cannot be reused: a fresh worker, on the CPU.
  let restart = Boolean(failure);
  for (let i = first.index; i < found.generations.length; i++) {
    const generation = found.generations[i];
    const loaded = i === first.index ? { ok: true, session: first.session } : await sessions.load(found.id, generation);
    if (!loaded.ok) {
      damaged.push({ generation, savedAt: generation, step: null, reason: loaded.reason, unread: loaded.unread });
      continue;
    }
    const session = loaded.session;
    const shapes = shapesSize(session.datasetKey);
    const dataset = shapes ? shapesSpec(shapes) : session.datasetKey === "served-cifar10" ? await servedCifar() : await datasetSpec();
    resetView();
    setState("starting", damaged.length ? `The newest snapshot is damaged: restoring the previous one (step ${stepOf(session)})…` : "Restoring the saved session…");
    if (restart) await restartWorker(device);
    restart = false;
    let restored;
    try {
      const { options, datasetKey, nets } = session;
      restored = await worker.call("trainRestore", { session: { options, datasetKey, nets }, dataset, device }, nets.map((n) => n.bytes));
    } catch (err) {
      // Damaged bytes ("snapshot"), or a worker they crashed ("internal": restarted first).
      if (err.kind !== "snapshot" && err.kind !== "internal") throw err;
      damaged.push({ generation, savedAt: session.savedAt, step: session.step, reason: err.message });
      restart = err.kind === "internal";
      continue;
    }
    applyOptions(restored.options);
    if (shapes) {
      $("train-data").value = "shapes";
      $("train-size").value = shapes;
    }
    begin(restored.options, restored.dataset, restored.nets);
    for (const [name, net] of state.nets) Object.assign(net, session.curves[name] ?? {});
    render();
    // This tab goes on saving this session (unless another live tab holds it); the damaged
    // generations are of no use any more (one that could not be read at all is left alone).
    await sessions.adopt(found.id);
    for (const d of damaged) if (!d.unread) sessions.dropGeneration(found.id, d.generation).catch(() => {});
    showError(null);
    if (damaged.length) {
      banner(`${damageText(damaged)} The previous snapshot (step ${stepOf(session)}, saved ${when(session.savedAt)}) was restored instead: press Resume to continue from there.${details(damaged)}`, { warn: true, dismiss: true });
      setState("paused", `Restored the previous snapshot at step ${maxStep()} (the newest snapshot was damaged). Press Resume to continue.`);
    } else {
      hideBanner();
      setState("paused", `Restored at step ${maxStep()}. Press Resume to continue.`);
    }
    view.dataset.restored = String(maxStep());
    return;
  }
  resetView();
  unrestorable(found, damaged, failure);
}
