// The timed loops of the browser benchmark, for either build of the package: bench.js runs
// them in the page with the main build, bench-worker.js in a Web Worker with the threaded one.

/** Milliseconds of `warmup + runs` batch-1 inferences of a randomly initialised `arch`. */
export async function timeInference({ Classifier }, { arch, size, input, runs, warmup, device }) {
  const classifier = await Classifier.random({ arch, device });
  const times = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t = performance.now();
    await classifier.logits(input, Uint32Array.from([1, 3, size, size]));
    if (i >= warmup) times.push(performance.now() - t);
  }
  classifier.free();
  return times;
}

/** Milliseconds of `trainRuns` ResNet-20 training steps at `batch`, after one. */
export async function timeTraining({ Dataset, Trainer }, { batch, trainRuns, device }) {
  const data = Dataset.shapes({ trainSize: 4 * batch, testSize: 10 });
  const trainer = await Trainer.create({ arch: "resnet20", batchSize: batch, device, schedule: { kind: "constant" } }, data);
  const times = [];
  for (let i = 0; i < 1 + trainRuns; i++) {
    const t = performance.now();
    await trainer.step(1);
    if (i >= 1) times.push(performance.now() - t);
  }
  trainer.free();
  return times;
}
