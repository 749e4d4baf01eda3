// The model worker: the only place the wasm package runs, so the page never freezes.
// Every request is `{ id, type, args }`; every answer `{ id, result }` or `{ id, error }`.

import init, { Classifier, backendInfo, version } from "../pkg/resnet.js";

const ready = init();
let classifier = null;

function describe(classifier) {
  return {
    arch: classifier.arch,
    numClasses: classifier.numClasses,
    labels: classifier.labels,
    card: classifier.card,
    backend: classifier.backend,
  };
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
    if (!classifier) {
      const error = new Error("no model is loaded yet");
      error.kind = "input";
      throw error;
    }
    const input = image instanceof ArrayBuffer ? new Uint8Array(image) : image;
    return classifier.classify(input, { tta, topK });
  },
};

self.onmessage = async ({ data: { id, type, args } }) => {
  try {
    await ready;
    const handler = handlers[type];
    if (!handler) throw Object.assign(new Error(`unknown request '${type}'`), { kind: "input" });
    self.postMessage({ id, result: await handler(args) });
  } catch (err) {
    // A wasm panic surfaces as a RuntimeError without a kind: report it as internal.
    self.postMessage({
      id,
      error: { message: String(err?.message ?? err), name: err?.name ?? "Error", kind: err?.kind ?? "internal" },
    });
  }
};
