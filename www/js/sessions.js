// The training session in IndexedDB: the trainers' snapshots (weights, optimizer state, data
// order, RNG, step) and the options they were started with, so a reload can continue.

const DB = "resnet-training";
const STORE = "sessions";
const KEY = "current";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transaction(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted (storage full?)"));
    });
  } finally {
    db.close();
  }
}

/** Replaces the saved session. Snapshot bytes are stored as ArrayBuffers. */
export function save(session) {
  const nets = session.nets.map((n) => ({ name: n.name, bytes: n.bytes.slice().buffer }));
  return transaction("readwrite", (store) => store.put({ ...session, nets }, KEY));
}

export function load() {
  return transaction("readonly", (store) => store.get(KEY)).then((s) => s ?? null);
}

export function clear() {
  return transaction("readwrite", (store) => {
    store.delete(CURVES);
    return store.delete(KEY);
  });
}

const CURVES = "curves";

/** The page's chart history, saved beside the snapshots so a restored run shows its past. */
export function saveCurves(curves) {
  return transaction("readwrite", (store) => store.put(curves, CURVES));
}

export function loadCurves() {
  return transaction("readonly", (store) => store.get(CURVES)).then((c) => c ?? null);
}
