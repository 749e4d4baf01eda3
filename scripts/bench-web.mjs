// Runs www/bench.html in headless Debian Chromium, on WebGPU and on the CPU fallback, and
// prints its JSON lines. A benchmark, not a test:
//   node scripts/bench-web.mjs [--no-train] [--device webgpu|cpu] [--ort] [--runs N]
// (Needs pkg/ built by scripts/build-web.sh.)
//
// --ort times ONNX Runtime Web on the same nets in the same page, case by case (its wasm
// backend on one thread beside our CPU fallback, which is single-threaded; its WebGPU backend
// beside ours), and prints ratio lines (ONNX Runtime's ms / ours: above 1, we are faster).
// It installs onnxruntime-web into ~/.cache/resnet-ort, and exports the ONNX files with
// scripts/export_onnx.py into ~/.cache/resnet-onnx using PyTorch from $TORCH_PYTHON, else
// ~/.cache/resnet-torch-venv (created with pip install torch torchvision onnx, as
// scripts/bench-native.sh does).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { start } from "./serve.mjs";
import { launch } from "../tests/e2e/browser.mjs";

const ORT_VERSION = "1.30.0";
const root = resolve(fileURLToPath(import.meta.url), "../..");
const train = !process.argv.includes("--no-train");
const ort = process.argv.includes("--ort");
const only = process.argv.indexOf("--device");
const devices = only > 0 ? [process.argv[only + 1]] : ["webgpu", "cpu"];
const runsAt = process.argv.indexOf("--runs");
const runs = runsAt > 0 ? `&runs=${Number(process.argv[runsAt + 1])}` : "";

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

const server = await start({ port: 0, mounts: ort ? ortFiles() : {} });
for (const device of devices) {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/bench.html?device=${device}&train=${train ? 1 : 0}&ort=${ort ? 1 : 0}${runs}`);
    await page.waitForSelector("body[data-done]", { timeout: 3_600_000 });
    console.log((await page.textContent("#out")).trim());
  } finally {
    await browser.close();
  }
}
server.close();
