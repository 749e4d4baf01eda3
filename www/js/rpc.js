// Promise-based calls into the model worker. The worker owns all ML work (wasm); this
// module only moves messages.

export class WorkerClient {
  constructor(url) {
    this.url = url;
    this.pending = new Map();
    this.nextId = 1;
    this.listeners = new Map();
    this.#spawn();
  }

  /**
   * Replaces the worker with a fresh one (a fresh wasm instance and GPU device): after a lost
   * device or a wasm panic the old instance cannot be trusted. Pending calls are rejected.
   */
  restart() {
    this.worker.terminate();
    const error = Object.assign(new Error("the model worker was restarted"), { kind: "internal" });
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
    this.#spawn();
  }

  #spawn() {
    this.worker = new Worker(this.url, { type: "module" });
    this.worker.onmessage = (event) => this.#receive(event.data);
    this.worker.onerror = (event) => {
      const error = new Error(
        `${event.message || "the model worker failed"}; reload the page (a training session saved before this is offered again)`,
      );
      error.kind = "internal";
      for (const { reject } of this.pending.values()) reject(error);
      this.pending.clear();
      this.listeners.get("crash")?.(error);
    };
  }

  /** Calls `type` in the worker; resolves with its result or rejects with its typed error. */
  call(type, args = {}, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, args }, transfer);
    });
  }

  /** Subscribes to unsolicited events (`{ event, data }`) the worker posts. */
  on(event, callback) {
    this.listeners.set(event, callback);
  }

  #receive(message) {
    if (message.event) {
      this.listeners.get(message.event)?.(message.data);
      return;
    }
    const call = this.pending.get(message.id);
    if (!call) return;
    this.pending.delete(message.id);
    if (message.error) {
      const error = new Error(message.error.message);
      error.name = message.error.name;
      error.kind = message.error.kind;
      call.reject(error);
    } else {
      call.resolve(message.result);
    }
  }
}
