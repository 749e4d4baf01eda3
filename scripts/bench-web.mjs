// Runs www/bench.html in headless Debian Chromium, on WebGPU and on the CPU fallback, and
// prints its JSON lines. A benchmark, not a test:
//   node scripts/bench-web.mjs [--no-train] [--device webgpu|cpu] [--ort] [--tfjs] [--runs N]
//                              [--batch N] [--train-runs N] [--threads N]
// (Needs pkg/ built by scripts/build-web.sh.) --runs N: timed inference runs (5); --batch N and
// --train-runs N: the training row's batch (128) and timed steps (3), after one warm-up step.
//
// --ort times ONNX Runtime Web on the same nets in the same page, case by case (its wasm
// backend on one thread beside our CPU fallback, which is single-threaded; its WebGPU backend
// beside ours), and prints ratio lines (ONNX Runtime's ms / ours: above 1, we are faster).
// It installs onnxruntime-web into ~/.cache/resnet-ort, and exports the ONNX files with
// scripts/export_onnx.py into ~/.cache/resnet-onnx using PyTorch from $TORCH_PYTHON, else
// ~/.cache/resnet-torch-venv (created with pip install torch torchvision onnx, as
// scripts/bench-native.sh does).
//
// --threads N runs the CPU cases on the threaded build (pkg/threads/, N Web Workers; the page is
// served cross-origin isolated, as scripts/serve.mjs does) and, with --ort, ONNX Runtime Web's
// wasm backend on the same N threads. It implies --device cpu.
//
// --tfjs times the training step in TensorFlow.js too (ONNX Runtime cannot train): the same
// ResNet-20 and batch (www/js/bench-tfjs.js), on TF.js's webgpu backend beside our WebGPU and on
// its pure-JS cpu backend beside our CPU fallback (its wasm backend has no Conv2DBackpropFilter
// kernel: the page tries one and prints the error), and a ratio line (TF.js's ms / ours). It
// installs @tensorflow/tfjs (whose bundle registers the gradients), tfjs-core, tfjs-backend-cpu,
// tfjs-backend-webgpu and tfjs-backend-wasm into ~/.cache/resnet-tfjs and serves them at /tfjs/.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { start } from "./serve.mjs";
import { launch } from "../tests/e2e/browser.mjs";

const ORT_VERSION = "1.30.0";
const TFJS_VERSION = "4.22.0";
const TFJS_PACKAGES = ["tfjs", "tfjs-core", "tfjs-backend-cpu", "tfjs-backend-webgpu", "tfjs-backend-wasm"];
const root = resolve(fileURLToPath(import.meta.url), "../..");
const train = !process.argv.includes("--no-train");
const ort = process.argv.includes("--ort");
const tfjs = process.argv.includes("--tfjs");
const only = process.argv.indexOf("--device");
const threadsAt = process.argv.indexOf("--threads");
const threads = threadsAt > 0 ? `&threads=${Number(process.argv[threadsAt + 1])}` : "";
const devices = only > 0 ? [process.argv[only + 1]] : threads ? ["cpu"] : ["webgpu", "cpu"];
const runsAt = process.argv.indexOf("--runs");
const runs = runsAt > 0 ? `&runs=${Number(process.argv[runsAt + 1])}` : "";
const query = (flag, name) => {
  const at = process.argv.indexOf(flag);
  return at > 0 ? `&${name}=${Number(process.argv[at + 1])}` : "";
};
const trainQuery = query("--batch", "batch") + query("--train-runs", "trainRuns");

/** onnxruntime-web's dist/ and the ONNX files' directory, made when missing. */
function ortFiles() {
  const cache = join(homedir(), ".cache");
  const prefix = join(cache, "resnet-ort");
  const dist = join(prefix, "node_modules/onnxruntime-web/dist");
  if (!existsSync(join(dist, "ort.webgpu.min.mjs"))) {
    console.error(`bench-web: installing onnxruntime-web@${ORT_VERSION} into ${prefix}`);
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--silent", "--prefix", prefix, `onnxruntime-web@${ORT_VERSION}`], { stdio: "inherit" });
  }
  const models = join(cache, "resnet-onnx");
  let python = process.env.TORCH_PYTHON;
  if (!python) {
    const venv = join(cache, "resnet-torch-venv");
    python = join(venv, "bin/python");
    const has = () => { try { execFileSync(python, ["-c", "import torch, torchvision, onnx"], { stdio: "ignore" }); return true; } catch { return false; } };
    if (!has()) {
      console.error(`bench-web: installing torch, torchvision and onnx from PyPI into ${venv}`);
      if (!existsSync(python)) execFileSync("python3", ["-m", "venv", venv], { stdio: "inherit" });
      execFileSync(join(venv, "bin/pip"), ["install", "--quiet", "torch", "torchvision", "onnx"], { stdio: "inherit" });
    }
  }
  execFileSync(python, [join(root, "scripts/export_onnx.py"), models], { stdio: "inherit" });
  return { "/ort/": dist, "/onnx/": models };
}

/** The @tensorflow packages' directory (each package's dist/ holds its bundles), made when missing. */
function tfjsFiles() {
  const prefix = join(homedir(), ".cache/resnet-tfjs");
  const scope = join(prefix, "node_modules/@tensorflow");
  const have = TFJS_PACKAGES.every((name) => {
    try { return JSON.parse(readFileSync(join(scope, name, "package.json"), "utf8")).version === TFJS_VERSION; } catch { return false; }
  });
  if (!have) {
    console.error(`bench-web: installing TensorFlow.js ${TFJS_VERSION} into ${prefix}`);
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--silent", "--prefix", prefix, ...TFJS_PACKAGES.map((name) => `@tensorflow/${name}@${TFJS_VERSION}`)], { stdio: "inherit" });
  }
  return { "/tfjs/": scope };
}

const server = await start({ port: 0, mounts: { ...(ort ? ortFiles() : {}), ...(tfjs ? tfjsFiles() : {}) } });
for (const device of devices) {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/bench.html?device=${device}&train=${train ? 1 : 0}&ort=${ort ? 1 : 0}&tfjs=${tfjs ? 1 : 0}${runs}${trainQuery}${threads}`);
    await page.waitForSelector("body[data-done]", { timeout: 3_600_000 });
    console.log((await page.textContent("#out")).trim());
  } finally {
    await browser.close();
  }
}
server.close();
