// What both views share: the model worker, the tab bar, the error box, the backend badge and
// drop zones. DOM and messages only: every model operation runs in the worker (worker.js).

import { WorkerClient } from "./rpc.js";

export const $ = (id) => document.getElementById(id);

/** The page's one model worker (model.js's restartWorker replaces its instance in place). */
export const worker = new WorkerClient(new URL("./worker.js", import.meta.url));

// ---------- tabs ----------
for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
}

export function showView(name) {
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
  snapshot: "The saved snapshot cannot be restored",
  unsupported: "This browser cannot run the model",
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
let backendTitle = $("backend-badge").title;

export function showBackend(info) {
  const badge = $("backend-badge");
  badge.classList.remove("pending", "gpu", "cpu");
  if (info.unsupported) {
    badge.textContent = "not supported";
    badge.title = info.unsupported;
    return;
  }
  badge.classList.add(info.backend === "webgpu" ? "gpu" : "cpu");
  const threads = info.threads === 1 ? "1 thread" : `${info.threads} threads`;
  badge.textContent = info.backend === "webgpu" ? `WebGPU · ${info.adapter}` : `CPU · WebAssembly · ${threads}`;
  badge.title = info.fallbackReason
    ? `Running on the CPU because ${info.fallbackReason}\n${info.adapter}`
    : info.adapter;
  backendTitle = badge.title;
  badge.dataset.backend = info.backend;
  if (info.fallbackReason) badge.textContent += " (no WebGPU)";
}

// Pointing at the badge adds the model worker's memory to its tooltip: the WebAssembly memory
// grows to what the model has needed at most and is given back only with the worker.
$("backend-badge").addEventListener("mouseenter", async () => {
  try {
    const { wasmBytes } = await worker.call("memory");
    $("backend-badge").title = `${backendTitle}\nModel worker memory: ${(wasmBytes / 1e6).toFixed(1)} MB (WebAssembly)`;
  } catch {
    // A worker being restarted: the tooltip stays as it is.
  }
});

// ---------- drop zones ----------
/**
 * Makes `zone` a drop target: highlighted while something is dragged over it; what is dropped
 * goes to `onDrop` as `[{ name, file }]` (File objects: the caller reads what it needs). With
 * `folders`, dropped folders are walked and names are paths ("dir/class/image.png").
 */
export function dropZone(zone, onDrop, { folders = false } = {}) {
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    onDrop(await dropped(e.dataTransfer, folders));
  });
}

/** The dropped files, walking into folders when asked. */
async function dropped(transfer, folders) {
  if (!folders) return [...transfer.files].map((file) => ({ name: file.name, file }));
  // The entries are taken before the first await: a DataTransfer is readable during its
  // drop event only.
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((ok, bad) => entry.file(ok, bad));
      out.push({ name: prefix + file.name, file });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return out;
}
