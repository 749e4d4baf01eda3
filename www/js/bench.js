// Browser benchmark: median latency of one image through ResNet-20 (32x32) and ResNet-18/50
// (224x224), and training images/s of ResNet-20 at batch 128. Timing only; the networks run
// in the wasm package. Results are JSON lines in #out (scripts/bench-web.mjs collects them).
import init, { Classifier, Dataset, Trainer, backendInfo } from "../pkg/resnet.js";

const params = new URLSearchParams(location.search);
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

try {
  await init();
  const info = await backendInfo(device);
  report({ backend: info.backend, adapter: info.adapter, fallbackReason: info.fallbackReason ?? null });
  for (const [arch, size] of [["resnet20", 32], ["resnet18", 224], ["resnet50", 224]]) {
    const classifier = await Classifier.random({ arch, device });
    const input = new Float32Array(3 * size * size).map(() => Math.random() * 2 - 1);
    const times = [];
    for (let i = 0; i < warmup + runs; i++) {
      const t = performance.now();
      await classifier.logits(input, Uint32Array.from([1, 3, size, size]));
      if (i >= warmup) times.push(performance.now() - t);
    }
    report({ mode: "infer", arch, size, batch: 1, device: info.backend, ms: +median(times).toFixed(1), msMin: +Math.min(...times).toFixed(1), runs });
    classifier.free();
  }
  if (params.get("train") !== "0") {
    const batch = Number(params.get("batch") ?? 128);
    const data = Dataset.shapes({ trainSize: 4 * batch, testSize: 10 });
    const trainer = await Trainer.create({ arch: "resnet20", batchSize: batch, device, schedule: { kind: "constant" } }, data);
    const times = [];
    const trainRuns = Number(params.get("trainRuns") ?? 3);
    for (let i = 0; i < 1 + trainRuns; i++) {
      const t = performance.now();
      await trainer.step(1);
      if (i >= 1) times.push(performance.now() - t);
    }
    const ms = median(times);
    report({ mode: "train", arch: "resnet20", size: 32, batch, device: info.backend, msPerStep: +ms.toFixed(0), imagesPerSecond: +((batch * 1000) / ms).toFixed(1), runs: trainRuns });
  }
} catch (err) {
  report({ error: `${err.kind ?? "internal"}: ${err.message}` });
}
document.body.dataset.done = "1";
