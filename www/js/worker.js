// The model worker: the only place the wasm package runs, so the page never freezes.
// Requests are `{ id, type, args }`, answers `{ id, result }` or `{ id, error }`; the training
// loop also posts `{ event, data }` messages (progress, evaluations, snapshots, status).
// Every decision and every number comes from the wasm package; the worker forwards them.

import * as main from "../pkg/resnet.js";

/** Typed error for the page. */
function fail(kind, message) {
  return Object.assign(new Error(message), { kind });
}

// The package is built with WebAssembly SIMD (its CPU kernels are several times faster with
// it); a browser without SIMD cannot compile it at all, so say so instead of a CompileError.
// The bytes: a function returning i8x16.popcnt(i8x16.splat(0)) (as in wasm-feature-detect).
const simd = WebAssembly.validate(
  new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]),
);
const ready = simd
  ? main.default()
  : Promise.reject(
      fail(
        "unsupported",
        "this browser's WebAssembly has no SIMD, which the model needs (Chrome and Edge 91+, Firefox 89+, Safari 16.4+ have it)",
      ),
    );
ready.catch(() => {}); // reported with each request below
let classifier = null;

// ---------------------------------------------------------------- which build runs the CPU
// The package has two builds: the main one (WebGPU, and the CPU on one thread) and a threaded
// CPU build (pkg/threads/: its kernels run on rayon's pool of Web Workers sharing one memory).
// Browsers share WebAssembly memory only on a cross-origin-isolated page (COOP + COEP headers,
// which scripts/serve.mjs sends), so elsewhere the CPU runs the main build; the backend badge
// says which one runs and on how many threads.

let threaded = null; // the threaded build's promise, started at the first CPU request
const THREAD_POOL_PATIENCE_S = 30;

/** The threaded build with its thread pool started, or null where it cannot run (and why). */
function threadedBuild() {
  if (!self.crossOriginIsolated) return Promise.resolve({ pkg: null, why: "threads need a cross-origin-isolated page" });
  if (threaded) return threaded;
  const start = async () => {
    const pkg = await import("../pkg/threads/resnet.js");
    const { memory } = await pkg.default();
    // One thread per logical core: the kernels split each layer's work over all of them.
    await pkg.initThreadPool(Math.max(1, navigator.hardwareConcurrency || 1));
    return { pkg, memory, why: null };
  };
  // A browser that never starts the pool's workers (nested workers refused, say) must not hang
  // the model: after this long the CPU runs the main build, saying why.
  const patience = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`its ${THREAD_POOL_PATIENCE_S} s to start its thread pool ran out`)), THREAD_POOL_PATIENCE_S * 1000),
  );
  threaded = Promise.race([start(), patience]).catch((err) => ({ pkg: null, why: `the threaded build did not start: ${err?.message ?? err}` }));
  return threaded;
}

/**
 * The build that runs `device` ("auto" | "webgpu" | "cpu"), the device to ask it for, and what
 * runs (the main build decides: WebGPU when it has an adapter, else the CPU, saying why).
 */
async function buildFor(device) {
  const info = await main.backendInfo(device);
  if (info.backend !== "cpu") return { pkg: main, device, info };
  const { pkg, why } = await threadedBuild();
  if (!pkg) return { pkg: main, device, info: { ...info, adapter: `${info.adapter}; ${why}` } };
  const cpu = await pkg.backendInfo("cpu");
  return { pkg, device: "cpu", info: { ...cpu, ...(info.fallbackReason ? { fallbackReason: info.fallbackReason } : {}) } };
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

// ---------------------------------------------------------------- training
// The run loop is the crate's (`trainer.run`): it decides when to step, evaluate, snapshot,
// lower the rate and stop, for every net at once. The worker only forwards its events to the
// page, with the snapshot bytes when the loop asks for one (the page keeps them in IndexedDB,
// with its curves, in one transaction: sessions.js).

const training = {
  dataset: null,
  datasetKey: null,
  trainer: null, // one wasm Trainer: one net, or a residual net and its plain twin
  backend: null, // what runs it (buildFor's info)
  running: false,
  options: null,
  snapshotStep: null, // the step of the last snapshot handed to the page (or restored)
  loop: null,
};

/** A dataset key for people: "shapes:512" → "Shapes (512 training images)". */
function describeKey(key) {
  if (key.startsWith("shapes:")) return `Shapes (${key.slice(7)} training images)`;
  if (key === "served-cifar10") return "CIFAR-10 from this server";
  const [kind, files] = key.split(/:(.*)/s);
  return `${kind} files ${files.length > 60 ? files.slice(0, 60) + "…" : files}`;
}

const post = (event, data, transfer = []) => self.postMessage({ event, data }, transfer);

async function makeDataset(pkg, spec) {
  const { Dataset } = pkg;
  if (spec.kind === "shapes") return Dataset.shapes({ trainSize: spec.trainSize, testSize: spec.testSize });
  if (spec.kind === "cifar") return Dataset.cifar(spec.files.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })));
  if (spec.kind === "folder") return Dataset.fromImages(spec.files.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })));
  throw fail("data", `unknown dataset kind '${spec.kind}'`);
}

/** The page's form as a run spec (the same JSON `resnet train --spec` reads). */
function runSpec(o, dataset) {
  const data = dataset.kind === "shapes" ? { kind: "shapes", trainSize: dataset.trainSize } : dataset.kind === "cifar" ? { kind: "cifar10" } : { kind: "folder" };
  return {
    arch: o.mode === "family" ? o.nets[0] : `resnet${o.depth}`,
    plain: Boolean(o.plain),
    compare: o.mode === "compare",
    compareWith: o.mode === "family" ? o.nets.slice(1) : [],
    optimizer: { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.nesterov },
    schedule: { kind: o.schedule },
    batchSize: o.batchSize,
    seed: o.seed,
    augment: o.augment,
    iterations: o.iterations,
    evalEvery: o.evalEvery,
    evalLimit: o.evalImages,
    snapshotSeconds: o.snapshotSeconds,
    stepsPerRound: o.stepsPerCall,
    data,
  };
}

function netInfos() {
  const t = training.trainer;
  return t ? t.nets.map((n) => ({ ...n, backend: training.backend })) : [];
}

/**
 * `{ [name]: report }` of `measure(trainer, name)` for every net of the run, after pausing a
 * running loop (left paused: the reports describe the weights at this step). `what` names the
 * measurement in the refusal when a Start or Reset replaces the run meanwhile.
 */
async function measureEveryNet(what, measure) {
  const t = training.trainer;
  if (!t) throw fail("input", "no trained model yet: start a run first");
  await stopLoop();
  const reports = {};
  for (const { name } of t.nets) {
    // A Start or Reset meanwhile freed this trainer: its numbers would describe no run.
    if (training.trainer !== t) throw fail("input", `the run was replaced during ${what}`);
    reports[name] = await measure(t, name);
  }
  return reports;
}

async function stopLoop() {
  training.running = false;
  await training.loop;
}

async function showExamples(net, step) {
  const t = training.trainer;
  const indices = Array.from({ length: 12 }, (_, i) => (step * 7 + i * 131) % training.dataset.testSize);
  const predictions = await t.predict(Uint32Array.from(indices), net);
  const images = indices.map((i) => training.dataset.testImage(i));
  post("train-examples", { net, predictions, images });
}

/**
 * The nets' snapshots, for the page to save ("train-snapshot"); at a pause, none when the
 * loop's last one was taken at this very step (the page keeps two generations: two of the
 * same step would leave no older one).
 */
async function snapshot({ unlessSaved = false } = {}) {
  const t = training.trainer;
  const step = Math.max(...t.nets.map((n) => n.stepCount));
  if (unlessSaved && step === training.snapshotStep) return;
  const snapshots = await t.snapshots();
  training.snapshotStep = step;
  // Each snapshot in an ArrayBuffer of its own, moved (not copied) to the page.
  const nets = snapshots.map((n) => ({ name: n.name, bytes: n.bytes.slice().buffer }));
  const session = { options: { ...training.options }, datasetKey: training.datasetKey, nets, step, savedAt: Date.now() };
  post("train-snapshot", session, nets.map((n) => n.bytes));
}

/** Forwards one event of the crate's run loop to the page; returns what to do after the round. */
function forward(event, after) {
  const infos = new Map(netInfos().map((n) => [n.name, n]));
  switch (event.event) {
    case "step": {
      const m = event.metrics;
      const info = { ...infos.get(event.net), stepCount: m.step, epoch: m.epoch, lr: m.lr };
      post("train-progress", { net: event.net, steps: [m], imagesPerSecond: event.imagesPerSecond, info });
      break;
    }
    case "eval":
      post("train-eval", { net: event.net, step: event.step, report: event.report });
      after.examples.set(event.net, event.step);
      break;
    case "snapshot":
      after.snapshot = true;
      break;
    case "diverged":
      post("train-status", { state: "diverged", net: event.net, message: event.message });
      break;
    case "applied":
      post("train-applied", { step: event.step, description: event.description });
      break;
    case "finished":
      after.finished = event.step;
      break;
  }
}

/** Resolves after the worker's pending messages (a pause, new hyper-parameters) have run. */
const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

async function runLoop() {
  while (training.running) {
    // On the CPU a round can settle without leaving the microtask queue: give the event loop a
    // turn, or a pause sent meanwhile would wait for something else to yield.
    await nextTask();
    if (!training.running) break;
    const after = { examples: new Map(), snapshot: false, finished: null };
    try {
      await training.trainer.run((event) => forward(event, after));
      for (const [net, step] of after.examples) await showExamples(net, step);
      if (after.snapshot) await snapshot();
    } catch (err) {
      training.running = false;
      post("train-status", { state: "error", kind: err.kind ?? "internal", message: err.message });
      return;
    }
    if (after.finished !== null) {
      training.running = false;
      post("train-status", { state: "finished", message: `${after.finished} iterations done` });
    }
  }
  if (training.trainer) await snapshot({ unlessSaved: true }).catch(() => {});
}

function startLoop() {
  if (training.running) return;
  training.running = true;
  post("train-status", { state: "running" });
  training.loop = runLoop().finally(() => {
    if (!training.running) post("train-status", { state: "paused" });
  });
}

function dropTrainer() {
  training.trainer?.free();
  training.trainer = null;
}

const handlers = {
  async version() {
    return main.version();
  },

  async backend({ device }) {
    return (await buildFor(device)).info;
  },

  /** This worker's WebAssembly memory, both builds' (the badge's tooltip shows it; it never shrinks). */
  async memory() {
    const { memory } = await ready;
    const shared = threaded ? (await threaded).memory : null;
    return { wasmBytes: memory.buffer.byteLength + (shared?.buffer.byteLength ?? 0) };
  },

  async load({ bytes, device, arch, numClasses }) {
    const build = await buildFor(device);
    const next = await build.pkg.Classifier.load(new Uint8Array(bytes), { device: build.device, arch, numClasses });
    classifier?.free();
    classifier = next;
    return { ...describe(classifier), backend: build.info };
  },

  async classify({ image, tta, topK }) {
    if (!classifier) throw fail("input", "no model is loaded yet");
    const input = image instanceof ArrayBuffer ? new Uint8Array(image) : image;
    return classifier.classify(input, { tta, topK });
  },

  /** Builds the dataset and the trainer (residual + plain twin, or one net), then runs. */
  async trainStart({ options, dataset, fineTune }) {
    await stopLoop();
    dropTrainer();
    const build = await buildFor(options.device);
    training.dataset = await makeDataset(build.pkg, dataset);
    training.datasetKey = dataset.key;
    training.options = options;
    training.snapshotStep = null;
    training.backend = build.info;
    const spec = { ...runSpec(options, dataset), device: build.device };
    const { Trainer } = build.pkg;
    training.trainer = fineTune
      ? await Trainer.fineTune(new Uint8Array(fineTune.bytes), { ...spec, arch: undefined, plain: false, compare: false, fineTune: { freezeBackbone: fineTune.freezeBackbone } }, training.dataset)
      : await Trainer.create(spec, training.dataset);
    // After this answer is posted: the page must know the nets before their first progress
    // (on the CPU a whole round runs before the answer would otherwise leave).
    setTimeout(startLoop, 0);
    return { dataset: training.dataset.describe(), nets: netInfos() };
  },

  async trainPause() {
    await stopLoop();
    return { step: Math.max(0, ...netInfos().map((n) => n.stepCount)) };
  },

  async trainResume() {
    if (!training.trainer) throw fail("input", "nothing to resume: start a run first");
    startLoop();
    return true;
  },

  async trainReset() {
    await stopLoop();
    dropTrainer();
    return true;
  },

  /** Queues new optimizer values; the loop applies them at the next step ("train-applied"). */
  async trainSet({ lr, momentum, weightDecay, nesterov }) {
    if (!training.trainer) throw fail("input", "start a run first");
    const queued = training.trainer.setHyperparameters({ optimizer: { lr, momentum, weightDecay, nesterov } });
    if (training.options) Object.assign(training.options, { lr, momentum, weightDecay, nesterov });
    training.snapshotStep = null; // the next pause saves the new values
    return queued;
  },

  async trainExport({ net, f16 }) {
    const t = training.trainer;
    if (!t) throw fail("input", "no trained model yet");
    const name = t.nets.some((n) => n.name === net) ? net : t.nets[0].name;
    const wasRunning = training.running;
    await stopLoop();
    const bytes = await t.exportWeights({ f16, net: name });
    const info = t.nets.find((n) => n.name === name);
    if (wasRunning) startLoop();
    return { bytes: bytes.buffer, arch: info.arch, step: info.stepCount };
  },

  /**
   * The shattered-gradients measurement (Balduzzi et al. 2017) of every net of the run:
   * `{ [name]: GradientCorrelation }`, the correlation of the input gradients of test images and
   * of nearby copies block by block, with the wasm package's default images and perturbation.
   * A running loop is paused first and left paused, as for the lesion study.
   */
  async trainGradients() {
    return measureEveryNet("the gradient measurement", (t, name) => t.gradientCorrelation(undefined, undefined, name));
  },

  /**
   * The lesion study (Veit et al. 2016) of every net of the run: `{ [name]: LesionReport }`,
   * each block deleted in turn and the net tested on the run's evaluation images, all measured
   * by the wasm package. A running loop is paused first and left paused: the study describes the
   * weights at this step, which resuming would change at once.
   */
  async trainLesion() {
    return measureEveryNet("the lesion study", (t, name) => t.lesion(undefined, name));
  },

  /**
   * Continues a saved session `{ options, datasetKey, nets: [{ name, bytes }] }` (the page reads
   * it from IndexedDB) on its dataset (given again unless it is Shapes). Snapshot bytes the
   * wasm package refuses (damaged, truncated, not a snapshot) are a `snapshot` error.
   */
  async trainRestore({ session, dataset, device }) {
    if (!session || !Array.isArray(session.nets) || !session.options) throw fail("snapshot", "the saved session is incomplete");
    if (dataset.key !== session.datasetKey)
      throw fail("data", `the saved session trained on ${describeKey(String(session.datasetKey))}, not ${describeKey(dataset.key)}: give it the same data`);
    // After a lost GPU device the page restores on another device ("cpu").
    const options = device ? { ...session.options, device } : session.options;
    await stopLoop();
    dropTrainer();
    const build = await buildFor(options.device);
    training.dataset = await makeDataset(build.pkg, dataset);
    training.datasetKey = dataset.key;
    training.options = options;
    training.backend = build.info;
    const nets = session.nets.map((n) => ({ name: n.name, bytes: new Uint8Array(n.bytes) }));
    try {
      training.trainer = await build.pkg.Trainer.restore(nets, training.dataset, build.device);
    } catch (err) {
      // A device that cannot be had is not the snapshot's fault; anything else the package
      // refuses is (its message says what).
      // A wasm panic (a RuntimeError) leaves this instance unusable: the page restarts it.
      if (err?.kind === "device") throw err;
      if (err instanceof WebAssembly.RuntimeError) throw fail("internal", `restoring the snapshot crashed the model worker: ${err.message}`);
      throw fail("snapshot", String(err?.message ?? err));
    }
    // What was restored is saved already.
    training.snapshotStep = Math.max(...training.trainer.nets.map((n) => n.stepCount));
    return { dataset: training.dataset.describe(), nets: netInfos(), options };
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
