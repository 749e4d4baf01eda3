// The Train view's data: Shapes (embedded), CIFAR batches or a folder of class folders dropped
// or picked, CIFAR-10 served from www/data; and the dataset specs the worker builds them from.

import { $, dropZone } from "../shell.js";

let dataset = { kind: "shapes" }; // { kind, files?, key? }; null until dropped files arrive

// CIFAR-10 put in www/data by `resnet data fetch cifar10 --to www/data` is offered directly.
const SERVED = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"];
fetch("data/cifar-10-batches-bin/test_batch.bin", { method: "HEAD" })
  .then((r) => {
    if (r.ok) document.querySelector('#train-data option[value="served"]').hidden = false;
  })
  .catch(() => {});

export async function servedCifar() {
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
  dataset = kind === "shapes" || kind === "served" ? { kind } : null;
});

/** `[{ name, file }]` read as `[{ name, bytes }]`. */
function read(picked) {
  return Promise.all(picked.map(async ({ name, file }) => ({ name, bytes: await file.arrayBuffer() })));
}

dropZone($("data-drop"), async (dropped) => useDataFiles(await read(dropped)), { folders: true });
// The same through file pickers (a folder picker gives "folder/class/file.png" paths).
for (const id of ["data-files", "data-folder"]) {
  $(id).addEventListener("change", async (e) => {
    const picked = [...e.target.files].map((file) => ({ name: file.webkitRelativePath || file.name, file }));
    useDataFiles(await read(picked));
    e.target.value = "";
  });
}

function useDataFiles(files) {
  const kind = $("train-data").value;
  const bytes = files.reduce((n, f) => n + f.bytes.byteLength, 0);
  dataset = { kind, files, key: `${kind}:${files.map((f) => f.name).sort().join(",")}` };
  $("data-drop-text").textContent = `${files.length} file${files.length === 1 ? "" : "s"} (${(bytes / 1e6).toFixed(1)} MB) ready`;
}

/** The dataset chosen in the form, as the worker's `trainStart` / `trainRestore` take it. */
export async function datasetSpec() {
  if (!dataset) throw Object.assign(new Error("drop the dataset files first"), { kind: "data" });
  const d = dataset;
  if (d.kind === "served") return servedCifar();
  return d.kind === "shapes" ? shapesSpec(Number($("train-size").value)) : { kind: d.kind, key: d.key, files: d.files };
}

/** The embedded dataset with `trainSize` training images; the key lets a restore check it. */
export function shapesSpec(trainSize) {
  return { kind: "shapes", key: `shapes:${trainSize}`, trainSize };
}

/** The training-set size in a Shapes key ("shapes:512" → 512), or null for other data. */
export function shapesSize(key) {
  return key.startsWith("shapes:") ? Number(key.slice("shapes:".length)) : null;
}
