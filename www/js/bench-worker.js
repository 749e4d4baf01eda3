// The threaded build's side of the browser benchmark (bench.js with ?threads=N): our cases run
// here, in a Web Worker as on the page (worker.js), because a thread pool's caller blocks until
// its workers finish, which on a page's main thread can only spin, taking a core from them.
// Requests `{ type, args }` answered with `{ result }` or `{ error }`, one at a time.
import init, { Classifier, Dataset, Trainer, backendInfo, initThreadPool } from "../pkg/threads/resnet.js";

const handlers = {
  async start({ threads }) {
    await init();
    await initThreadPool(threads);
    return backendInfo("cpu");
  },

  /** Milliseconds of `warmup + runs` batch-1 inferences of a randomly initialised `arch`. */
  async infer({ arch, size, input, runs, warmup }) {
    const classifier = await Classifier.random({ arch, device: "cpu" });
    const times = [];
    for (let i = 0; i < warmup + runs; i++) {
      const t = performance.now();
      await classifier.logits(input, Uint32Array.from([1, 3, size, size]));
      if (i >= warmup) times.push(performance.now() - t);
    }
    classifier.free();
    return times;
  },

  /** Milliseconds of `trainRuns` ResNet-20 training steps at `batch`, after one. */
  async train({ batch, trainRuns }) {
    const data = Dataset.shapes({ trainSize: 4 * batch, testSize: 10 });
    const trainer = await Trainer.create({ arch: "resnet20", batchSize: batch, device: "cpu", schedule: { kind: "constant" } }, data);
    const times = [];
    for (let i = 0; i < 1 + trainRuns; i++) {
      const t = performance.now();
      await trainer.step(1);
      if (i >= 1) times.push(performance.now() - t);
    }
    trainer.free();
    return times;
  },
};

self.onmessage = async ({ data: { type, args } }) => {
  try {
    self.postMessage({ result: await handlers[type](args) });
  } catch (err) {
    self.postMessage({ error: `${err.kind ?? "internal"}: ${err.message ?? err}` });
  }
};
