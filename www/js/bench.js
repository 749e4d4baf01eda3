// Browser benchmark: median latency of one image through ResNet-20 (32x32) and ResNet-18/50
// (224x224), and training images/s of ResNet-20 at batch 128. Timing only; the networks run
// in the wasm package. Results are JSON lines in #out (scripts/bench-web.mjs collects them).
// With ?ort=1 (scripts/bench-web.mjs --ort serves /ort/ and /onnx/) each inference case is
// also timed in ONNX Runtime Web, same input, same warm-up and median, and a ratio line
// follows: ONNX Runtime's ms / ours (above 1, we are faster). Its wasm backend runs on one
// thread, as our CPU fallback does (N threads each with ?threads=N). ONNX Runtime cannot train: with ?tfjs=1 (bench-web.mjs
// --tfjs serves /tfjs/) the training step is also timed in TensorFlow.js (www/js/bench-tfjs.js:
// the same ResNet-20, batch and step, its webgpu backend beside our WebGPU, its pure-JS cpu
// backend beside our CPU fallback, as its wasm backend has no filter-gradient kernel), and a
// ratio line follows. ?batch=N and ?trainRuns=N size the training row (128 and 3).
// ?threads=N runs the threaded CPU build (pkg/threads/, N workers; the page must be
// cross-origin isolated) in a Web Worker, as the page does (bench-worker.js), and gives ONNX
// Runtime's wasm backend the same N threads.
import * as main from "../pkg/resnet.js";
import { timeInference, timeTraining } from "./bench-cases.js";

const { default: init, backendInfo } = main;

const params = new URLSearchParams(location.search);
const threads = Number(params.get("threads") ?? 0);

const device = params.get("device") ?? "webgpu";
const runs = Number(params.get("runs") ?? 5);
const warmup = Number(params.get("warmup") ?? 2);
const out = document.getElementById("out");
const lines = [];
const report = (line) => {
  lines.push(JSON.stringify(line));
  out.textContent = lines.join("\n");
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Our cases: in this page (the main build), or in bench-worker.js (the threaded build). */
function ours() {
  if (threads > 0) {
    const worker = new Worker(new URL("./bench-worker.js", import.meta.url), { type: "module" });
    const call = (type, args) =>
      new Promise((resolve, reject) => {
        worker.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve(data.result));
        worker.postMessage({ type, args });
      });
    return { start: () => call("start", { threads }), infer: (args) => call("infer", args), train: (args) => call("train", args) };
  }
  return {
    async start() {
      await init();
      return backendInfo(device);
    },
    infer: (args) => timeInference(main, { ...args, device }),
    train: (args) => timeTraining(main, { ...args, device }),
  };
}

/** Median ms of ONNX Runtime Web on `/onnx/${arch}.onnx`, its outputs read to the CPU. */
async function ortMs(ort, arch, size, input, backend) {
  const session = await ort.InferenceSession.create(`/onnx/${arch}.onnx`, {
    executionProviders: [backend === "webgpu" ? "webgpu" : "wasm"],
    graphOptimizationLevel: "all",
  });
  const feeds = { input: new ort.Tensor("float32", input, [1, 3, size, size]) };
  const times = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t = performance.now();
    const { logits } = await session.run(feeds);
    await logits.getData();
    if (i >= warmup) times.push(performance.now() - t);
  }
  await session.release();
  return times;
}

try {
  const engine = ours();
  const info = await engine.start();
  report({ backend: info.backend, adapter: info.adapter, threads: info.threads ?? null, fallbackReason: info.fallbackReason ?? null });
  let ort = null;
  if (params.get("ort") === "1") {
    ort = await import("/ort/ort.webgpu.min.mjs");
    ort.env.wasm.wasmPaths = "/ort/";
    ort.env.wasm.numThreads = Math.max(1, threads);
    report({ engine: "onnxruntime-web", version: ort.env.versions?.web ?? null, wasmThreads: ort.env.wasm.numThreads, crossOriginIsolated: self.crossOriginIsolated });
  }
  for (const [arch, size] of [["resnet20", 32], ["resnet18", 224], ["resnet50", 224]]) {
    const input = new Float32Array(3 * size * size).map(() => Math.random() * 2 - 1);
    const times = await engine.infer({ arch, size, input, runs, warmup });
    const ms = median(times);
    report({ mode: "infer", arch, size, batch: 1, device: info.backend, ms: +ms.toFixed(1), msMin: +Math.min(...times).toFixed(1), runs });
    if (ort) {
      const theirs = await ortMs(ort, arch, size, input, info.backend);
      const theirMs = median(theirs);
      report({ engine: "onnxruntime-web", mode: "infer", arch, size, batch: 1, device: info.backend, ms: +theirMs.toFixed(1), msMin: +Math.min(...theirs).toFixed(1), runs });
      report({ ratio: +(theirMs / ms).toFixed(2), arch, device: info.backend, note: "onnxruntime-web ms / ours: above 1, we are faster" });
    }
  }
  if (params.get("train") !== "0") {
    const batch = Number(params.get("batch") ?? 128);
    const trainRuns = Number(params.get("trainRuns") ?? 3);
    const times = await engine.train({ batch, trainRuns });
    const ms = median(times);
    report({ mode: "train", arch: "resnet20", size: 32, batch, device: info.backend, msPerStep: +ms.toFixed(0), imagesPerSecond: +((batch * 1000) / ms).toFixed(1), runs: trainRuns });
    if (params.get("tfjs") === "1") {
      const { loadTf, wasmConvGradError, timeTraining, RESNET20_PARAMS } = await import("./bench-tfjs.js");
      const tf = await loadTf("/tfjs/");
      const engine = { engine: "tensorflow.js", version: tf.version.tfjs };
      if (info.backend !== "webgpu") {
        const error = await wasmConvGradError(tf);
        report({ ...engine, backend: "wasm", mode: "train", trains: error === null, note: error === null ? "a conv filter gradient ran" : `its wasm backend cannot train convolutions: ${error}` });
      }
      const backend = info.backend === "webgpu" ? "webgpu" : "cpu";
      const theirs = await timeTraining(tf, { backend, batch, trainRuns });
      if (theirs.params !== RESNET20_PARAMS) report({ error: `tensorflow.js resnet20 has ${theirs.params} parameters, ours ${RESNET20_PARAMS}` });
      if (!Number.isFinite(theirs.loss)) report({ error: `tensorflow.js loss ${theirs.loss}` });
      if (theirs.gpuErrors.length) report({ error: `tensorflow.js: ${theirs.gpuErrors.length} WebGPU errors, the first: ${theirs.gpuErrors[0]}` });
      report({ ...engine, arch: "resnet20", params: theirs.params, numTensorsBefore: theirs.tensorsBefore, numTensorsAfter: theirs.tensorsAfter, loss: +theirs.loss.toFixed(4) });
      const theirMs = median(theirs.times);
      report({ ...engine, backend: tf.getBackend(), mode: "train", arch: "resnet20", size: 32, batch, msPerStep: +theirMs.toFixed(0), imagesPerSecond: +((batch * 1000) / theirMs).toFixed(1), runs: trainRuns });
      report({ ratio: +(theirMs / ms).toFixed(2), mode: "train", arch: "resnet20", batch, device: info.backend, note: "tensorflow.js ms / ours: above 1, we are faster" });
    }
  }
} catch (err) {
  report({ error: `${err.kind ?? "internal"}: ${err.message}` });
}
document.body.dataset.done = "1";
