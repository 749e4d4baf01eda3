// Saved training sessions in IndexedDB, so a reload can continue a run: the trainers'
// snapshots (weights, optimizer state, data order, RNG, step — bytes made by the wasm package),
// the options they were started with and the page's chart curves.
//
// Storage design:
// - One object store, "snapshots", keyed `[sessionId, generation]`. A session is one run in
//   one tab: every tab has its own id (kept in sessionStorage, so a reload of the tab keeps it;
//   a new Start gives a new one), so tabs training at once never overwrite each other.
// - A generation is a save's time in ms (made strictly increasing per session), so the keys
//   alone say which session was saved last and which generation is the newest.
// - Each save writes a new generation and, in the same transaction, keeps the previous one
//   beside it (older ones are deleted) and deletes all but the most recent KEEP sessions. The
//   curves are part of the record: snapshot and curves cannot disagree.
// - Reading, a record that is not what this page wrote (missing or odd fields) is reported as
//   damaged, like bytes the wasm package refuses, and the previous generation is offered.
// - A Web Lock per session id tells tabs apart when a tab is duplicated (sessionStorage is
//   copied): a tab only keeps an id no other live tab holds.

const DB = "resnet-training";
const VERSION = 2;
const STORE = "snapshots";
const LEGACY_STORE = "sessions"; // version 1: one session under "current", curves under "curves"
const KEEP = 3; // sessions kept (the most recently saved)
const GENERATIONS = 2; // generations kept per session: the newest and the one before

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, VERSION);
    request.onupgradeneeded = (event) => upgrade(request.result, request.transaction, event.oldVersion);
    request.onsuccess = () => {
      const db = request.result;
      db.onversionchange = () => db.close(); // a newer page in another tab upgrades the store
      resolve(db);
    };
    request.onerror = () => reject(request.error);
    // Blocked: an older page's connection is open; it closes after its transaction, and then
    // this request goes on.
  });
}

/** Creates the store; a version-1 session becomes a session of its own (one generation). */
function upgrade(db, tx, oldVersion) {
  const store = db.createObjectStore(STORE);
  if (oldVersion < 1 || !db.objectStoreNames.contains(LEGACY_STORE)) return;
  const legacy = tx.objectStore(LEGACY_STORE);
  const current = legacy.get("current");
  const curves = legacy.get("curves");
  curves.onsuccess = () => {
    const session = current.result;
    if (session && typeof session === "object") {
      const savedAt = Number.isFinite(session.savedAt) ? session.savedAt : Date.now();
      store.put({ ...session, curves: curves.result ?? null, savedAt }, ["legacy", savedAt]);
    }
    db.deleteObjectStore(LEGACY_STORE);
  };
}

const done = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

/** Runs `work(store)` in one transaction; resolves with its result once the transaction commits. */
async function transaction(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      let result;
      // Requests awaited inside `work` keep the transaction alive (IDB requests only).
      Promise.resolve(work(tx.objectStore(STORE))).then(
        (value) => (result = value),
        (err) => {
          try {
            tx.abort();
          } catch {
            // already finished
          }
          reject(err);
        },
      );
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted (storage full?)"));
    });
  } finally {
    db.close();
  }
}

/** Bytes (an ArrayBuffer or any view of one) in an ArrayBuffer of their own. */
const ownBuffer = (bytes) => (bytes instanceof ArrayBuffer ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice().buffer);

const isKey = (key) => Array.isArray(key) && key.length === 2 && typeof key[0] === "string" && Number.isFinite(key[1]);

/** Sessions by id, each with its generations newest first; the most recently saved first. */
function group(keys) {
  const sessions = new Map();
  for (const key of keys.filter(isKey)) {
    if (!sessions.has(key[0])) sessions.set(key[0], []);
    sessions.get(key[0]).push(key[1]);
  }
  for (const generations of sessions.values()) generations.sort((a, b) => b - a);
  return [...sessions].map(([id, generations]) => ({ id, generations })).sort((a, b) => b.generations[0] - a.generations[0]);
}

// ------------------------------------------------------------------ this tab's session id

const ID_KEY = "resnet-training-session";
const held = new Map(); // session id -> releases its Web Lock

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Takes the Web Lock of session `id` (held until released or the tab closes); waits up to
 * `waitMs` for another holder (a reloading document of this same tab lets go within moments),
 * or not at all. True without the Web Locks API (a page served over plain http).
 */
function claim(id, waitMs = 0) {
  if (held.has(id)) return Promise.resolve(true);
  if (!navigator.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    const signal = waitMs ? AbortSignal.timeout(waitMs) : undefined;
    const options = waitMs ? { signal } : { ifAvailable: true };
    navigator.locks
      .request(`${DB}:${id}`, options, (lock) => {
        if (!lock) return resolve(false);
        resolve(true);
        return new Promise((release) => held.set(id, release));
      })
      .catch(() => resolve(false));
  });
}

function release(id) {
  held.get(id)?.();
  held.delete(id);
}

/** This tab's session: `tab.id` is the id its snapshots are saved under (null before a run). */
export const tab = { id: null };

/** Resolves once this tab's id is known: kept across reloads, dropped when another tab holds it. */
export const ready = (async () => {
  let id = null;
  try {
    id = sessionStorage.getItem(ID_KEY);
  } catch {
    // storage disabled: this tab has no id until it starts a run
  }
  if (id && !(await claim(id, 3000))) {
    // A duplicated tab (its sessionStorage was copied): the other tab keeps the session.
    id = null;
    try {
      sessionStorage.removeItem(ID_KEY);
    } catch {
      // nothing to forget
    }
  }
  if (!id) return;
  if (tab.id) release(id); // a run began meanwhile, under a new id
  else tab.id = id;
})();

function setId(id) {
  if (tab.id && tab.id !== id) release(tab.id);
  tab.id = id;
  try {
    sessionStorage.setItem(ID_KEY, id);
  } catch {
    // the id lives as long as this document
  }
}

/** A new run in this tab: a new session id, so the tab's earlier session stays as it was. */
export function beginRun() {
  const id = newId();
  claim(id); // a fresh id: free
  setId(id);
  return id;
}

/**
 * This tab continues session `id` (just restored). It keeps saving under that id (so its
 * previous generations stay) unless another live tab holds it: then under a new id.
 */
export async function adopt(id) {
  await ready;
  if (tab.id === id) return id;
  if (await claim(id)) {
    setId(id);
    return id;
  }
  return beginRun();
}

// Writes run one after another, in the order they were asked for (a reset's delete after the
// save of the run's last snapshot).
let writes = Promise.resolve();
function serial(work) {
  const result = writes.then(work);
  writes = result.catch(() => {});
  return result;
}

// ------------------------------------------------------------------ saving and reading

/**
 * Saves a new generation of session `id` (`{ options, datasetKey, step, nets: [{ name, bytes }],
 * curves }`), keeping the previous generation and the KEEP most recent sessions, in one
 * transaction. Resolves with the generation once it is committed.
 */
export function save(id, session) {
  return serial(() => write(id, session));
}

function write(id, session) {
  const nets = session.nets.map((n) => ({ name: n.name, bytes: ownBuffer(n.bytes) }));
  return transaction("readwrite", async (store) => {
    const keys = await done(store.getAllKeys());
    const own = keys.filter((k) => isKey(k) && k[0] === id).map((k) => k[1]).sort((a, b) => b - a);
    const generation = Math.max(Date.now(), (own[0] ?? 0) + 1);
    const record = { format: "resnet-session", sessionId: id, generation, ...session, nets, savedAt: generation };
    store.put(record, [id, generation]);
    for (const old of own.slice(GENERATIONS - 1)) store.delete([id, old]);
    const others = group(keys).filter((s) => s.id !== id);
    for (const s of others.slice(KEEP - 1)) for (const g of s.generations) store.delete([s.id, g]);
    for (const key of keys) if (!isKey(key)) store.delete(key); // not the page's: unreadable anyway
    return generation;
  });
}

/**
 * The session a page offers: this tab's own (after a reload), else (unless `ownOnly`) the most
 * recently saved of any tab; `{ id, own, generations }` (newest first) or null.
 */
export async function offered({ ownOnly = false } = {}) {
  await ready;
  const id = tab.id;
  const keys = await transaction("readonly", (store) => done(store.getAllKeys()));
  const sessions = group(keys);
  const own = sessions.find((s) => s.id === id);
  const session = own ?? (ownOnly ? null : sessions[0]);
  return session ? { ...session, own: Boolean(own) } : null;
}

/** Why a stored record is not a session this page wrote (null when it is). */
function problem(record) {
  if (!record || typeof record !== "object") return "the record is not a saved session";
  const { nets, options, datasetKey } = record;
  if (!Array.isArray(nets) || nets.length === 0) return "the record holds no network snapshot";
  for (const n of nets) {
    const bytes = n?.bytes;
    const sized = bytes instanceof ArrayBuffer || ArrayBuffer.isView(bytes);
    if (typeof n?.name !== "string" || !sized || bytes.byteLength === 0) return "a network's snapshot bytes are missing";
  }
  if (!options || typeof options !== "object") return "the record's training options are missing";
  for (const field of ["depth", "iterations", "batchSize", "lr"]) {
    if (!Number.isFinite(options[field])) return `the record's training option '${field}' is missing`;
  }
  if (typeof datasetKey !== "string" || !datasetKey) return "the record does not say which data it trained on";
  return null;
}

/** Only the chart arrays of a record's curves, numbers or gaps (anything else is left out). */
function cleanCurves(curves, names) {
  const out = {};
  if (!curves || typeof curves !== "object") return out;
  const numbers = (a) => a.map((v) => (Number.isFinite(v) ? v : null)); // holes stay holes
  for (const name of names) {
    const c = curves[name];
    if (!c || typeof c !== "object") continue;
    out[name] = {};
    for (const field of ["loss", "error", "lr", "speed", "testError"]) {
      if (Array.isArray(c[field])) out[name][field] = numbers(c[field]);
    }
    if (Array.isArray(c.grads)) out[name].grads = c.grads.filter(Array.isArray).map(numbers);
  }
  return out;
}

/**
 * One generation of session `id`: `{ ok: true, session }` with `{ id, generation, savedAt, step,
 * options, datasetKey, nets: [{ name, bytes: ArrayBuffer }], curves }`, or `{ ok: false,
 * reason }` when the record is missing or not what the page wrote.
 */
export async function load(id, generation) {
  let record;
  try {
    record = await transaction("readonly", (store) => done(store.get([id, generation])));
  } catch (err) {
    return { ok: false, unread: true, reason: `it could not be read (${err?.message ?? err})` };
  }
  const reason = problem(record);
  if (reason) return { ok: false, reason };
  const nets = record.nets.map((n) => ({ name: n.name, bytes: ownBuffer(n.bytes) }));
  const savedAt = Number.isFinite(record.savedAt) ? record.savedAt : generation;
  const step = Number.isFinite(record.step) ? record.step : null;
  return {
    ok: true,
    session: { id, generation, savedAt, step, options: record.options, datasetKey: record.datasetKey, nets, curves: cleanCurves(record.curves, nets.map((n) => n.name)) },
  };
}

/** Deletes one generation (a damaged one). */
export function dropGeneration(id, generation) {
  return serial(() => transaction("readwrite", (store) => store.delete([id, generation])));
}

/** Deletes every generation of session `id`, and only those. */
export function discard(id) {
  if (!id) return Promise.resolve();
  return serial(() => transaction("readwrite", (store) => store.delete(IDBKeyRange.bound([id, -Infinity], [id, Infinity]))));
}
