// The threaded build's side of the browser benchmark (bench.js with ?threads=N): our cases run
// here, in a Web Worker as on the page (worker.js), because a thread pool's caller blocks until
// its workers finish, which on a page's main thread can only spin, taking a core from them.
// Requests `{ type, args }` answered with `{ result }` or `{ error }`, one at a time.
import * as threaded from "../pkg/threads/resnet.js";
import { timeInference, timeTraining } from "./bench-cases.js";

const handlers = {
  async start({ threads }) {
    await threaded.default();
    await threaded.initThreadPool(threads);
    return threaded.backendInfo("cpu");
  },
  infer: (args) => timeInference(threaded, { ...args, device: "cpu" }),
  train: (args) => timeTraining(threaded, { ...args, device: "cpu" }),
};

self.onmessage = async ({ data: { type, args } }) => {
  try {
    self.postMessage({ result: await handlers[type](args) });
  } catch (err) {
    self.postMessage({ error: `${err.kind ?? "internal"}: ${err.message ?? err}` });
  }
};
