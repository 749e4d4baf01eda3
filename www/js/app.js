// The Classify view (an entry point): an image dropped, pasted, picked, snapped from the webcam
// or taken from the samples, and the model's top-5 classes. DOM and messages only: every model
// operation runs in the worker (worker.js); the Model card is model.js.

import { loadDefaultModel, modelSettled, onModelLoaded } from "./model.js";
import { $, dropZone, showError, worker } from "./shell.js";

const state = {
  tta: "center",
  image: null, // { kind: "bytes", bytes: ArrayBuffer } or { kind: "pixels", imageData }
};

onModelLoaded(async (model) => {
  renderSamplesNote(model);
  if (state.image) await classify();
});

$("tta-select").addEventListener("change", async (e) => {
  state.tta = e.target.value;
  if (state.image) await classify();
});

// ---------- images ----------
async function setImageBytes(bytes, type) {
  state.image = { kind: "bytes", bytes };
  // The wasm package decodes JPEG and PNG; the browser decodes WebP, BMP and GIF for it.
  const head = bytes.byteLength > 12 ? new TextDecoder().decode(new Uint8Array(bytes, 0, 12)) : "";
  const magic = head.slice(0, 4);
  const decodedHere = ["image/bmp", "image/gif", "image/webp"].includes(type) ? type
    : magic.startsWith("BM") ? "image/bmp" : magic === "GIF8" ? "image/gif"
    : magic === "RIFF" && head.slice(8) === "WEBP" ? "image/webp" : null;
  if (decodedHere) {
    try {
      const bitmap = await createImageBitmap(new Blob([bytes], { type: decodedHere }));
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const context = canvas.getContext("2d");
      context.drawImage(bitmap, 0, 0);
      state.image = { kind: "pixels", imageData: context.getImageData(0, 0, bitmap.width, bitmap.height) };
    } catch {
      // Not an image the browser can read: the crate names the problem.
    }
  }
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
    await modelSettled();
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
dropZone(dropzone, async ([first]) => {
  if (first) await setImageBytes(await first.file.arrayBuffer(), first.file.type);
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
