// TensorFlow.js counterpart of the benchmark's training row (www/js/bench.js loads this module
// only with ?tfjs=1; scripts/bench-web.mjs --tfjs serves TF.js's packages at /tfjs/).
//
// The same CIFAR ResNet-20 as the crate's (He et al. 2015 §4.2): 3x3 conv 16 → BN → ReLU,
// three stages of three BasicBlocks (16, 32, 64 channels; stride 2 at the first block of stages
// 2 and 3), option-A shortcuts (x[:, ::2, ::2] and zero channels appended after the existing
// ones), global average pool, fc to 10 classes. Bias-free convs with padding 1 on every side
// (PyTorch's, not TF's asymmetric "same" at stride 2), He-normal fan-out init, BN in training
// mode (batch statistics, eps 1e-5, running statistics updated with momentum 0.1). NHWC, TF.js's
// native layout. One step: forward, softmax cross-entropy mean, gradients of every trainable
// variable, SGD momentum 0.9 with weight decay 1e-4 on the conv and fc weights (the crate's
// default: BN γ/β and biases are not decayed), and the loss read back to JS.
//
// TF.js is loaded from its UMD builds (classic scripts that set the global `tf`): the union
// package @tensorflow/tfjs, whose bundle is the one that registers the gradients and includes the
// cpu backend (tfjs-core's own bundles register no gradients), then the webgpu and wasm backends.
// Their ES-module builds import bare specifiers and, in the wasm backend, Node's built-ins (fs,
// path, os, perf_hooks), which a plain static server cannot give the browser without shims.
const SCRIPTS = [
  "tfjs/dist/tf.es2017.min.js",
  "tfjs-backend-webgpu/dist/tf-backend-webgpu.es2017.min.js",
  "tfjs-backend-wasm/dist/tf-backend-wasm.es2017.min.js",
];

/** The parameter count of the crate's ResNet-20 (README: `resnet info --arch resnet20`). */
export const RESNET20_PARAMS = 269_722;

/** Loads TF.js with its cpu, webgpu and wasm backends from `base`; returns the global `tf`. */
export async function loadTf(base = "/tfjs/") {
  for (const path of SCRIPTS) {
    await new Promise((ok, fail) => {
      const script = document.createElement("script");
      script.src = base + path;
      script.onload = ok;
      script.onerror = () => fail(new Error(`could not load ${script.src}`));
      document.head.append(script);
    });
  }
  const tf = globalThis.tf;
  tf.wasm.setWasmPaths(`${base}tfjs-backend-wasm/dist/`);
  return tf;
}

/**
 * Tries a convolution's filter gradient on TF.js's wasm backend; returns the error's message
 * (null if it trained). Leaves the backend set to wasm.
 */
export async function wasmConvGradError(tf) {
  if (!(await tf.setBackend("wasm"))) return "the wasm backend did not initialise";
  try {
    tf.tidy(() => {
      const x = tf.ones([1, 4, 4, 1]);
      const w = tf.ones([3, 3, 1, 1]);
      const dw = tf.grad((w) => tf.sum(tf.conv2d(x, w, 1, 1)))(w);
      dw.dataSync();
    });
    return null;
  } catch (err) {
    return err.message;
  }
}

/** The ResNet-20's variables and its forward pass in training mode. */
export function resnet20(tf, classes = 10) {
  const weights = []; // decayed
  const others = []; // BN γ/β, fc bias: not decayed
  const running = []; // BN running mean/var: not trainable
  const conv = (cin, cout) => {
    // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std sqrt(2 / (cout · 3 · 3))
    const w = tf.variable(tf.randomNormal([3, 3, cin, cout], 0, Math.sqrt(2 / (cout * 9))));
    weights.push(w);
    return w;
  };
  const bn = (c) => {
    const p = { gamma: tf.variable(tf.ones([c])), beta: tf.variable(tf.zeros([c])),
      mean: tf.variable(tf.zeros([c]), false), variance: tf.variable(tf.ones([c]), false) };
    others.push(p.gamma, p.beta);
    running.push(p.mean, p.variance);
    return p;
  };
  const stem = { w: conv(3, 16), bn: bn(16) };
  const blocks = [];
  let cin = 16;
  for (const [stage, cout] of [16, 32, 64].entries()) {
    for (let b = 0; b < 3; b++) {
      const stride = stage > 0 && b === 0 ? 2 : 1;
      blocks.push({ cin, cout, stride, w1: conv(cin, cout), bn1: bn(cout), w2: conv(cout, cout), bn2: bn(cout) });
      cin = cout;
    }
  }
  const bound = 1 / Math.sqrt(64); // nn.Linear's default init
  const fcW = tf.variable(tf.randomUniform([64, classes], -bound, bound));
  const fcB = tf.variable(tf.randomUniform([classes], -bound, bound));
  weights.push(fcW);
  others.push(fcB);

  // Batch statistics (biased variance, as PyTorch normalises with); the running statistics take
  // momentum 0.1 of the batch's (unbiased variance, as PyTorch keeps).
  const batchNorm = (x, p) => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const n = x.size / x.shape[3];
    p.mean.assign(tf.tidy(() => tf.add(tf.mul(p.mean, 0.9), tf.mul(mean, 0.1))));
    p.variance.assign(tf.tidy(() => tf.add(tf.mul(p.variance, 0.9), tf.mul(variance, 0.1 * n / (n - 1)))));
    return tf.batchNorm(x, mean, variance, p.beta, p.gamma, 1e-5);
  };
  // x[:, ::2, ::2, :] through reshape and slice (TF.js has no gradient for strided slices), in
  // 4 dimensions: the slice's gradient is a pad, and the webgpu backend's rank-5 pad shader does
  // not compile (WGSL "cannot index type 'vec5'").
  const subsample = (x) => {
    const [b, h, w, c] = x.shape;
    const pairs = tf.reshape(x, [b * (h / 2), 2, w / 2, 2 * c]);
    return tf.reshape(tf.slice(pairs, [0, 0, 0, 0], [b * (h / 2), 1, w / 2, c]), [b, h / 2, w / 2, c]);
  };
  const forward = (x) => {
    let y = tf.relu(batchNorm(tf.conv2d(x, stem.w, 1, 1), stem.bn));
    for (const k of blocks) {
      const out = tf.relu(batchNorm(tf.conv2d(y, k.w1, k.stride, 1), k.bn1));
      const residual = batchNorm(tf.conv2d(out, k.w2, 1, 1), k.bn2);
      let shortcut = k.stride === 2 ? subsample(y) : y;
      if (k.cout !== k.cin) shortcut = tf.pad(shortcut, [[0, 0], [0, 0], [0, 0], [0, k.cout - k.cin]]);
      y = tf.relu(tf.add(residual, shortcut));
    }
    return tf.add(tf.matMul(tf.mean(y, [1, 2]), fcW), fcB);
  };
  const trainable = [...weights, ...others];
  return {
    forward,
    weights,
    trainable,
    params: trainable.reduce((n, v) => n + v.size, 0),
    dispose: () => [...trainable, ...running].forEach((v) => v.dispose()),
  };
}

/**
 * A training step of `model` on (x, oneHot): SGD momentum 0.9, weight decay 1e-4 on the
 * conv and fc weights, lr `lr`. Resolves to the loss, read back to JS.
 */
export function trainStep(tf, model, { lr = 0.1, momentum = 0.9, weightDecay = 1e-4 } = {}) {
  const optimizer = tf.train.momentum(lr, momentum);
  const decayed = new Map(model.weights.map((v) => [v.name, v]));
  const step = async (x, oneHot) => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(oneHot, model.forward(x)), model.trainable);
      for (const [name, g] of Object.entries(grads)) {
        if (decayed.has(name)) grads[name] = tf.add(g, tf.mul(decayed.get(name), weightDecay));
      }
      optimizer.applyGradients(grads);
      return value;
    });
    const [value] = await loss.data();
    loss.dispose();
    return value;
  };
  step.dispose = () => optimizer.dispose();
  return step;
}

/**
 * Times TF.js's ResNet-20 training step on `backend`: one untimed warm-up step, then
 * `trainRuns` timed steps on a batch of random images and one-hot labels.
 */
export async function timeTraining(tf, { backend, batch, trainRuns }) {
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} did not initialise`);
  await tf.ready();
  // WebGPU reports a shader or pipeline that fails validation here, not as an exception.
  const gpuErrors = [];
  if (backend === "webgpu") tf.backend().device.addEventListener("uncapturederror", (e) => gpuErrors.push(e.error.message));
  const model = resnet20(tf);
  const x = tf.randomNormal([batch, 32, 32, 3]);
  const labels = tf.tensor1d(Int32Array.from({ length: batch }, () => Math.floor(Math.random() * 10)), "int32");
  const oneHot = tf.cast(tf.oneHot(labels, 10), "float32");
  const step = trainStep(tf, model);
  await step(x, oneHot); // warm-up: compiles the shaders, makes the optimizer's slots
  const tensorsBefore = tf.memory().numTensors;
  const times = [];
  let loss;
  for (let i = 0; i < trainRuns; i++) {
    const t = performance.now();
    loss = await step(x, oneHot);
    times.push(performance.now() - t);
  }
  const tensorsAfter = tf.memory().numTensors;
  step.dispose();
  model.dispose();
  tf.dispose([x, labels, oneHot]);
  return { times, params: model.params, tensorsBefore, tensorsAfter, loss, gpuErrors };
}
