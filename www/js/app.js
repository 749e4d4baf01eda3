// The page: DOM and messages only. Every model operation runs in the worker (worker.js).

import { WorkerClient } from "./rpc.js";

const $ = (id) => document.getElementById(id);
const worker = new WorkerClient(new URL("./worker.js", import.meta.url));

const state = {
  device: "auto",
  tta: "center",
  image: null, // { kind: "bytes", bytes: ArrayBuffer } or { kind: "pixels", imageData }
  loading: null,
};

// ---------- tabs ----------
for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
}

function showView(name) {
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === name));
  }
  for (const view of document.querySelectorAll(".view")) {
    view.hidden = view.id !== `view-${name}`;
  }
  document.dispatchEvent(new CustomEvent("viewchange", { detail: name }));
}

// ---------- errors ----------
const FRIENDLY = {
  image: "That file is not an image this page can read",
  weights: "Those weights cannot be used",
  arch: "Unknown or mismatched architecture",
  device: "The graphics device is not available",
  input: "Invalid input",
  internal: "Something went wrong inside the model worker (reload the page to recover)",
};

export function showError(err) {
  const box = $("error");
  if (!err) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.replaceChildren();
  const title = document.createElement("strong");
  title.textContent = FRIENDLY[err.kind] ?? "Error";
  const detail = document.createElement("span");
  detail.textContent = ` — ${err.message}`;
  box.append(title, detail);
}

// ---------- backend badge ----------
export function showBackend(info) {
  const badge = $("backend-badge");
  badge.classList.remove("pending", "gpu", "cpu");
  badge.classList.add(info.backend === "webgpu" ? "gpu" : "cpu");
  badge.textContent = info.backend === "webgpu" ? `WebGPU · ${info.adapter}` : "CPU · WebAssembly";
  badge.title = info.fallbackReason
    ? `Running on the CPU because ${info.fallbackReason}`
    : info.adapter;
  badge.dataset.backend = info.backend;
  if (info.fallbackReason) badge.textContent += " (no WebGPU)";
}

// ---------- model ----------
/** The weights of the model the Classify view runs (for fine-tuning in the Train view). */
export function currentWeights() {
  return state.weights?.slice(0);
}

/**
 * A fresh worker after a lost GPU device or a crash, with the Classify view's model loaded
 * again; `device` ("cpu" to fall back) becomes the page's device choice.
 */
export async function restartWorker(device) {
  worker.restart();
  if (device) {
    state.device = device;
    $("device-select").value = device;
  }
  if (state.weights) await loadModel(state.weights.slice(0), state.loadOptions);
}

async function loadModel(bytes, options = {}) {
  showError(null);
  state.weights = bytes.slice(0);
  state.loadOptions = options;
  $("model-info").textContent = "Loading…";
  const load = worker.call("load", { bytes, device: state.device, ...options }, []);
  state.loading = load;
  try {
    const model = await load;
    showBackend(model.backend);
    const card = model.card;
    const about = card.description ? ` — ${card.description}` : "";
    $("model-info").textContent =
      `${model.arch}, ${model.numClasses} classes, ${card.input_size}×${card.input_size} input${about}`;
    renderSamplesNote(model);
    if (state.image) await classify();
  } catch (err) {
    $("model-info").textContent = "No model loaded.";
    showError(err);
  }
}

async function loadDefaultModel() {
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
  state.custom = { bytes, options };
  await loadModel(bytes.slice(0), options);
}

$("model-select").addEventListener("change", async (e) => {
  const value = e.target.value;
  $("arch-fields").hidden = true;
  if (value === "default") await loadDefaultModel().catch(showError);
  else if (value === "file") $("weights-input").click();
  else if (value === "custom" && state.custom) await loadModel(state.custom.bytes.slice(0), state.custom.options);
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
  state.device = e.target.value;
  $("model-select").dispatchEvent(new Event("change"));
});

$("tta-select").addEventListener("change", async (e) => {
  state.tta = e.target.value;
  if (state.image) await classify();
});

// ---------- images ----------
async function setImageBytes(bytes, type) {
  state.image = { kind: "bytes", bytes };
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(new Blob([bytes], { type: type || "application/octet-stream" }));
  preview.hidden = false;
  $("webcam").hidden = true;
  $("drop-hint").hidden = true;
  await classify();
}

async function classify() {
  if (!state.image) return;
  showError(null);
  $("latency").textContent = "…";
  try {
    if (state.loading) await state.loading.catch(() => {});
    const image = state.image.kind === "bytes" ? state.image.bytes.slice(0) : state.image.imageData;
    const result = await worker.call("classify", { image, tta: state.tta, topK: 5 });
    renderPredictions(result);
  } catch (err) {
    $("latency").textContent = "";
    $("predictions").replaceChildren();
    $("predictions-empty").hidden = false;
    showError(err);
  }
}

function renderPredictions({ predictions, ms, backend, views }) {
  const list = $("predictions");
  list.replaceChildren(
    ...predictions.map((p, rank) => {
      const item = document.createElement("li");
      item.className = rank === 0 ? "top" : "";
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = p.label;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${(p.probability * 100).toFixed(1)}%`;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(p.probability * 100).toFixed(1)}%`;
      item.append(label, bar, value);
      return item;
    }),
  );
  $("predictions-empty").hidden = true;
  const where = backend === "webgpu" ? "WebGPU" : "CPU";
  $("latency").textContent = `${ms.toFixed(0)} ms on ${where} · ${views} view${views > 1 ? "s" : ""}`;
}

const dropzone = $("dropzone");
dropzone.addEventListener("click", () => $("file-input").click());
dropzone.addEventListener("keydown", (e) => {
  if (e.key === "Enter" || e.key === " ") $("file-input").click();
});
$("file-input").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (file) await setImageBytes(await file.arrayBuffer(), file.type);
  e.target.value = "";
});
for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (e) => {
    e.preventDefault();
    dropzone.classList.add("over");
  });
}
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
dropzone.addEventListener("drop", async (e) => {
  e.preventDefault();
  dropzone.classList.remove("over");
  const file = e.dataTransfer.files[0];
  if (file) await setImageBytes(await file.arrayBuffer(), file.type);
});
document.addEventListener("paste", async (e) => {
  if ($("view-classify").hidden) return;
  const item = [...e.clipboardData.items].find((i) => i.kind === "file");
  const file = item?.getAsFile();
  if (file) await setImageBytes(await file.arrayBuffer(), file.type);
});

// ---------- webcam ----------
$("webcam-button").addEventListener("click", async () => {
  const video = $("webcam");
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
    video.hidden = false;
    $("preview").hidden = true;
    $("drop-hint").hidden = true;
    $("snapshot-button").hidden = false;
  } catch (err) {
    showError({ kind: "input", message: `the webcam is not available (${err.message})` });
  }
});
$("snapshot-button").addEventListener("click", async (e) => {
  e.stopPropagation();
  const video = $("webcam");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0);
  state.image = { kind: "pixels", imageData: context.getImageData(0, 0, canvas.width, canvas.height) };
  await classify();
});

// ---------- samples ----------
function renderSamplesNote(model) {
  $("samples-note").textContent = model.card?.description?.includes("Shapes")
    ? "(test images of the Shapes dataset)"
    : "(Shapes images: meaningful for the bundled model only)";
}

async function loadSamples() {
  const response = await fetch("samples/index.json");
  if (!response.ok) return;
  const samples = await response.json();
  $("samples").replaceChildren(
    ...samples.map((sample) => {
      const button = document.createElement("button");
      button.className = "sample";
      button.title = sample.label;
      const img = document.createElement("img");
      img.src = `samples/${sample.file}`;
      img.alt = sample.label;
      button.append(img);
      button.addEventListener("click", async () => {
        const bytes = await (await fetch(img.src)).arrayBuffer();
        await setImageBytes(bytes, "image/png");
      });
      return button;
    }),
  );
}

// ---------- start ----------
async function start() {
  worker.call("version").then((v) => ($("version").textContent = `· resnet ${v}`)).catch(() => {});
  await Promise.all([loadSamples().catch(() => {}), loadDefaultModel().catch(showError)]);
  document.body.dataset.ready = "1";
}

start();

export { worker, showView };
