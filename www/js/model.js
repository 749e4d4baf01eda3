// The model the Classify view runs, and its Model card (bundled weights, a weights file, the
// device). Shared with the Train view: fine-tuning starts from these weights, a trained net is
// handed over here, and after a lost device the model is loaded again into a fresh worker.
// DOM and messages only: the model itself lives in the worker (worker.js).

import { $, showBackend, showError, worker } from "./shell.js";

const model = {
  device: "auto",
  weights: null, // the bytes last loaded (kept: the worker takes the copy it is sent)
  loadOptions: {},
  loading: null, // the latest load request
  custom: null, // { bytes, options } of a picked file or a model the Train view handed over
};

let loaded = async () => {};

/** `callback(model)` runs after each successful load (the Classify view re-renders). */
export function onModelLoaded(callback) {
  loaded = callback;
}

/** Resolves once the latest load has finished, whether it succeeded or not. */
export async function modelSettled() {
  await model.loading?.catch(() => {});
}

/** The weights of the model the Classify view runs (for fine-tuning in the Train view). */
export function currentWeights() {
  return model.weights?.slice(0);
}

/**
 * A fresh worker after a lost GPU device or a crash, with the Classify view's model loaded
 * again; `device` ("cpu" to fall back) becomes the page's device choice.
 */
export async function restartWorker(device) {
  worker.restart();
  if (device) {
    model.device = device;
    $("device-select").value = device;
  }
  if (model.weights) await loadModel(model.weights.slice(0), model.loadOptions);
}

async function loadModel(bytes, options = {}) {
  showError(null);
  model.weights = bytes.slice(0);
  model.loadOptions = options;
  $("model-info").textContent = "Loading…";
  const load = worker.call("load", { bytes, device: model.device, ...options }, []);
  model.loading = load;
  try {
    const described = await load;
    showBackend(described.backend);
    const card = described.card;
    const about = card.description ? ` — ${card.description}` : "";
    $("model-info").textContent =
      `${described.arch}, ${described.numClasses} classes, ${card.input_size}×${card.input_size} input${about}`;
    await loaded(described);
  } catch (err) {
    $("model-info").textContent = "No model loaded.";
    if (err.kind === "unsupported") showBackend({ backend: "none", unsupported: err.message });
    showError(err);
  }
}

export async function loadDefaultModel() {
  const response = await fetch("models/resnet20-shapes.bpk");
  if (!response.ok) throw Object.assign(new Error(`could not fetch the bundled model (${response.status})`), { kind: "weights" });
  await loadModel(await response.arrayBuffer());
}

/** Loads the weights of a file the user picked (or a model the Train view hands over). */
export async function useWeights(bytes, label, options = {}) {
  const select = $("model-select");
  let option = select.querySelector("option[data-custom]");
  if (!option) {
    option = document.createElement("option");
    option.dataset.custom = "1";
    select.append(option);
  }
  option.value = "custom";
  option.textContent = label;
  select.value = "custom";
  model.custom = { bytes, options };
  await loadModel(bytes.slice(0), options);
}

$("model-select").addEventListener("change", async (e) => {
  const value = e.target.value;
  $("arch-fields").hidden = true;
  if (value === "default") await loadDefaultModel().catch(showError);
  else if (value === "file") $("weights-input").click();
  else if (value === "custom" && model.custom) await loadModel(model.custom.bytes.slice(0), model.custom.options);
});

$("weights-input").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const bytes = await file.arrayBuffer();
  const isBurnpack = file.name.endsWith(".bpk");
  $("arch-fields").hidden = isBurnpack;
  if (!isBurnpack && !$("arch-input").value) {
    showError({ kind: "arch", message: "a .safetensors file does not say its architecture: enter it (e.g. resnet18) and the number of classes, then pick the file again" });
    return;
  }
  const options = isBurnpack
    ? {}
    : { arch: $("arch-input").value, numClasses: Number($("classes-input").value) || undefined };
  await useWeights(bytes, `File: ${file.name}`, options).catch(showError);
  e.target.value = "";
});

$("device-select").addEventListener("change", async (e) => {
  model.device = e.target.value;
  $("model-select").dispatchEvent(new Event("change"));
});
