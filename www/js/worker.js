// The model worker: the only place the wasm package runs, so the page never freezes.
// Requests are `{ id, type, args }`, answers `{ id, result }` or `{ id, error }`; the training
// loop also posts `{ event, data }` messages (progress, evaluations, snapshots, status).
// The worker orchestrates (which net steps next, when to evaluate or snapshot); every number
// comes from the wasm package.

import init, { Classifier, Dataset, Trainer, backendInfo, version } from "../pkg/resnet.js";
import * as sessions from "./sessions.js";

const ready = init();
let classifier = null;

/** Typed error for the page. */
function fail(kind, message) {
  return Object.assign(new Error(message), { kind });
}

function describe(classifier) {
  return {
    arch: classifier.arch,
    numClasses: classifier.numClasses,
    labels: classifier.labels,
    card: classifier.card,
    backend: classifier.backend,
  };
}

// ---------------------------------------------------------------- training orchestration

const training = {
  dataset: null,
  datasetKey: null,
  nets: [], // [{ name: "residual" | "plain" | "single", trainer, diverged, lastEval }]
  running: false,
  options: null,
  loop: null,
};

/** A dataset key for people: "shapes:512" → "Shapes (512 training images)". */
function describeKey(key) {
  if (key.startsWith("shapes:")) return `Shapes (${key.slice(7)} training images)`;
  if (key === "served-cifar10") return "CIFAR-10 from this server";
  const [kind, files] = key.split(/:(.*)/s);
  return `${kind} files ${files.length > 60 ? files.slice(0, 60) + "…" : files}`;
}

const post = (event, data) => self.postMessage({ event, data });

async function makeDataset(spec) {
  if (spec.kind === "shapes") return Dataset.shapes({ trainSize: spec.trainSize, testSize: spec.testSize });
  if (spec.kind === "cifar") return Dataset.cifar(spec.files.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })));
  if (spec.kind === "folder") return Dataset.fromImages(spec.files.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })));
  throw fail("data", `unknown dataset kind '${spec.kind}'`);
}

function trainerOptions(o, plain) {
  return {
    arch: `resnet${o.depth}`,
    plain,
    optimizer: { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.nesterov },
    schedule: { kind: o.schedule, total: o.iterations },
    batchSize: o.batchSize,
    seed: o.seed,
    augment: o.augment,
    device: o.device,
  };
}

function netInfo(net) {
  const t = net.trainer;
  return { name: net.name, arch: t.arch, layers: t.layers, stepCount: t.stepCount, epoch: t.epoch, stepsPerEpoch: t.stepsPerEpoch, lr: t.lr, backend: t.backend };
}

async function stopLoop() {
  training.running = false;
  await training.loop;
}

async function evaluate(net) {
  const report = await net.trainer.evaluate(training.options.evalImages);
  net.lastEval = report;
  post("train-eval", { net: net.name, step: net.trainer.stepCount, report });
  const indices = Array.from({ length: 12 }, (_, i) => (net.trainer.stepCount * 7 + i * 131) % training.dataset.testSize);
  const predictions = await net.trainer.predict(Uint32Array.from(indices));
  const images = indices.map((i) => training.dataset.testImage(i));
  post("train-examples", { net: net.name, predictions, images });
}

async function snapshot() {
  const saved = [];
  for (const net of training.nets) saved.push({ name: net.name, bytes: await net.trainer.snapshot() });
  const step = Math.max(...training.nets.map((n) => n.trainer.stepCount));
  await sessions.save({ options: training.options, datasetKey: training.datasetKey, nets: saved, step, savedAt: Date.now() });
  post("train-snapshot", { step, savedAt: Date.now() });
}

async function runLoop() {
  const o = training.options;
  let lastSnapshot = performance.now();
  while (training.running) {
    const active = training.nets.filter((n) => !n.diverged && n.trainer.stepCount < o.iterations);
    if (active.length === 0) {
      training.running = false;
      for (const net of training.nets) await evaluate(net);
      post("train-status", { state: "finished", message: `${o.iterations} iterations done` });
      break;
    }
    // Alternate the nets a few steps at a time, on the same data order (same seed).
    for (const net of active) {
      if (!training.running) break;
      try {
        if (training.simulateDeviceLoss) {
          training.simulateDeviceLoss = false;
          throw fail("device", "the GPU device was lost (simulated)");
        }
        const result = await net.trainer.step(Math.min(o.stepsPerCall, o.iterations - net.trainer.stepCount));
        post("train-progress", { net: net.name, ...result, info: netInfo(net) });
      } catch (err) {
        if (err.kind === "diverged") {
          net.diverged = true;
          post("train-status", { state: "diverged", net: net.name, message: err.message });
          continue;
        }
        training.running = false;
        post("train-status", { state: "error", kind: err.kind ?? "internal", message: err.message });
        return;
      }
      const step = net.trainer.stepCount;
      if (step % o.evalEvery < o.stepsPerCall) await evaluate(net);
    }
    if (performance.now() - lastSnapshot > o.snapshotSeconds * 1000) {
      await snapshot();
      lastSnapshot = performance.now();
    }
  }
  if (training.nets.length) await snapshot().catch(() => {});
}

function startLoop() {
  if (training.running) return;
  training.running = true;
  post("train-status", { state: "running" });
  training.loop = runLoop().finally(() => {
    if (!training.running) post("train-status", { state: "paused" });
  });
}

const handlers = {
  async version() {
    return version();
  },

  async backend({ device }) {
    return backendInfo(device);
  },

  async load({ bytes, device, arch, numClasses }) {
    const next = await Classifier.load(new Uint8Array(bytes), { device, arch, numClasses });
    classifier?.free();
    classifier = next;
    return describe(classifier);
  },

  async classify({ image, tta, topK }) {
    if (!classifier) throw fail("input", "no model is loaded yet");
    const input = image instanceof ArrayBuffer ? new Uint8Array(image) : image;
    return classifier.classify(input, { tta, topK });
  },

  /** Builds the dataset and the trainers (residual + plain twin, or one net), then runs. */
  async trainStart({ options, dataset, fineTune }) {
    await stopLoop();
    for (const net of training.nets) net.trainer.free();
    training.nets = [];
    training.dataset = await makeDataset(dataset);
    training.datasetKey = dataset.key;
    training.options = options;
    if (fineTune) {
      const trainer = await Trainer.fineTune(new Uint8Array(fineTune.bytes), { ...trainerOptions(options, false), arch: undefined, freezeBackbone: fineTune.freezeBackbone, optimizer: { lr: options.lr } }, training.dataset);
      training.nets.push({ name: "single", trainer });
    } else {
      const names = options.mode === "compare" ? ["residual", "plain"] : [options.plain ? "plain" : "residual"];
      for (const name of names) {
        const trainer = await Trainer.create(trainerOptions(options, name === "plain"), training.dataset);
        training.nets.push({ name, trainer });
      }
    }
    startLoop();
    return { dataset: training.dataset.describe(), nets: training.nets.map(netInfo) };
  },

  async trainPause() {
    await stopLoop();
    return { step: Math.max(0, ...training.nets.map((n) => n.trainer.stepCount)) };
  },

  async trainResume() {
    if (!training.nets.length) throw fail("input", "nothing to resume: start a run first");
    startLoop();
    return true;
  },

  async trainReset() {
    await stopLoop();
    for (const net of training.nets) net.trainer.free();
    training.nets = [];
    await sessions.clear();
    return true;
  },

  async trainSet({ lr, momentum, weightDecay, nesterov }) {
    for (const net of training.nets) {
      net.trainer.setHyperparameters({ optimizer: { lr, momentum, weightDecay, nesterov } });
    }
    if (training.options) Object.assign(training.options, { lr, momentum, weightDecay, nesterov });
    return training.nets.map(netInfo);
  },

  async trainExport({ net, f16 }) {
    const found = training.nets.find((n) => n.name === net) ?? training.nets[0];
    if (!found) throw fail("input", "no trained model yet");
    const wasRunning = training.running;
    await stopLoop();
    const bytes = await found.trainer.exportWeights({ f16 });
    if (wasRunning) startLoop();
    return { bytes: bytes.buffer, arch: found.trainer.arch, step: found.trainer.stepCount };
  },

  /**
   * Fault injection for the end-to-end test of the recovery path: the next training step fails
   * the way a lost GPU device does (a `device` error from the next read-back).
   */
  async trainSimulateDeviceLoss() {
    training.simulateDeviceLoss = true;
    return true;
  },

  async trainSession() {
    const session = await sessions.load();
    if (!session) return null;
    return { options: session.options, datasetKey: session.datasetKey, savedAt: session.savedAt, step: session.step, nets: session.nets.map((n) => n.name) };
  },

  /** Restores the saved session (its dataset must be given again unless it is Shapes). */
  async trainRestore({ dataset, device }) {
    const session = await sessions.load();
    // After a lost GPU device the page restores on another device ("cpu").
    if (session && device) session.options = { ...session.options, device };
    if (!session) throw fail("input", "there is no saved session");
    if (dataset.key !== session.datasetKey)
      throw fail("data", `the saved session trained on ${describeKey(session.datasetKey)}, not ${describeKey(dataset.key)}: give it the same data`);
    await stopLoop();
    training.dataset = await makeDataset(dataset);
    training.datasetKey = dataset.key;
    training.options = session.options;
    training.nets = [];
    for (const saved of session.nets) {
      const trainer = await Trainer.restore(new Uint8Array(saved.bytes), training.dataset, session.options.device);
      training.nets.push({ name: saved.name, trainer });
    }
    return { dataset: training.dataset.describe(), nets: training.nets.map(netInfo), options: session.options };
  },
};

self.onmessage = async ({ data: { id, type, args } }) => {
  try {
    await ready;
    const handler = handlers[type];
    if (!handler) throw fail("input", `unknown request '${type}'`);
    const result = await handler(args ?? {});
    const transfer = result?.bytes instanceof ArrayBuffer ? [result.bytes] : [];
    self.postMessage({ id, result }, transfer);
  } catch (err) {
    // A wasm panic surfaces as a RuntimeError without a kind: report it as internal.
    self.postMessage({
      id,
      error: { message: String(err?.message ?? err), name: err?.name ?? "Error", kind: err?.kind ?? "internal" },
    });
  }
};
