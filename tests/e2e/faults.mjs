// Faults of the Train view's saved sessions (IndexedDB), in headless Chromium on the page's CPU
// backend with tiny Shapes runs:
//  (a) two pages of the same origin train at once; after both reload, each restores its own
//      run (one trains ResNet-20, the other plain-20 with another rate and length);
//  (c) a page closed while its snapshot is being written (the page is closed the moment the
//      save's IndexedDB write is issued) leaves a session that a new page offers and restores;
//  (b) a page whose newest snapshot is truncated in IndexedDB says the newest snapshot was
//      damaged, restores the previous generation and trains on; the next save keeps the
//      previous generation and at most three sessions.
//   node tests/e2e/faults.mjs                 (needs pkg/ built)
import { start } from "../../scripts/serve.mjs";
import { check, launch, screenshot } from "./browser.mjs";

const began = Date.now();
const server = await start({ port: 0 });
const url = `http://127.0.0.1:${server.address().port}/`;
const TIMEOUT = 120_000;
// Two runs told apart by their net, rate and length: neither finishes (no evaluation either).
const RUNS = {
  A: { mode: "single", net: "residual", lr: "0.02", iterations: "200", seed: "1" },
  B: { mode: "single-plain", net: "plain", lr: "0.03", iterations: "300", seed: "2" },
};
const log = (message) => console.log(`  [${((Date.now() - began) / 1000).toFixed(0)} s] ${message}`);

// Test code, run in every document the pages load: the latest `resnet:train` detail (the
// view's public event, see www/js/train/index.js) in window.__observed; and, when the test arms
// it, the page is closed the moment an IndexedDB write is issued (the snapshot save in flight).
function instrument() {
  document.addEventListener("resnet:train", (e) => {
    window.__observed = e.detail;
  });
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    const request = put.apply(this, args);
    if (window.__e2eCloseOnWrite) {
      window.__e2eCloseOnWrite = false;
      window.e2eClosePage();
    }
    return request;
  };
}

const browser = await launch({ webgpu: false });
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const errors = [];

async function newPage(name, { sessionId = null } = {}) {
  const page = await context.newPage();
  // A duplicated tab: the browser copies the tab's sessionStorage, session id included.
  if (sessionId) await page.addInitScript((id) => sessionStorage.setItem("resnet-training-session", id), sessionId);
  page.on("pageerror", (e) => errors.push(`${name}: ${e}`));
  page.on("console", (m) => m.type() === "error" && console.log(`  [${name} console.error] ${m.text()}`));
  await page.addInitScript(instrument);
  await page.exposeFunction("e2eClosePage", () => {
    page.close().catch(() => {});
  });
  await page.goto(url);
  await ready(page);
  return page;
}

async function ready(page) {
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  await page.click("#tab-train");
}

async function fill(page, run) {
  await page.selectOption("#train-mode", run.mode);
  await page.selectOption("#train-depth", "20");
  await page.selectOption("#train-data", "shapes");
  await page.fill("#train-size", "16");
  await page.fill("#train-batch", "8");
  await page.fill("#train-lr", run.lr);
  await page.selectOption("#train-schedule", "constant");
  await page.uncheck("#train-augment");
  await page.fill("#train-iterations", run.iterations);
  await page.fill("#train-seed", run.seed);
}

const steps = (page) => page.evaluate(() => Math.max(0, ...Object.values(window.__observed?.nets ?? {}).map((n) => n.info.stepCount)));
const waitSteps = (page, n) =>
  page.waitForFunction((n) => Object.values(window.__observed?.nets ?? {}).some((net) => net.info.stepCount >= n), n, { timeout: TIMEOUT, polling: 250 });

/** Pauses; resolves with the step once the snapshot taken at the pause is saved. */
async function pauseAndSave(page) {
  await page.click("#train-pause");
  await page.waitForFunction(() => document.querySelector("#view-train").dataset.state === "paused", null, { timeout: TIMEOUT });
  const step = await steps(page);
  await page.waitForFunction((s) => document.querySelector("#train-note").dataset.snapshot === String(s), step, { timeout: TIMEOUT });
  return step;
}

async function bannerText(page) {
  await page.waitForSelector("#session-banner:not([hidden])", { timeout: TIMEOUT });
  return page.textContent("#session-text");
}

/** Clicks Restore; resolves with the step restored. */
async function restore(page) {
  await page.evaluate(() => delete document.querySelector("#view-train").dataset.restored);
  await page.click("#session-restore");
  await page.waitForFunction(() => document.querySelector("#view-train").dataset.restored, null, { timeout: TIMEOUT });
  return Number(await page.getAttribute("#view-train", "data-restored"));
}

const form = (page) => page.evaluate(() => ({ lr: document.querySelector("#train-lr").value, iterations: document.querySelector("#train-iterations").value }));

/** What the page's database holds: `{ [sessionId]: [{ generation, step, nets, bytes }] }`. */
function readStore(page) {
  return page.evaluate(async () => {
    const db = await new Promise((ok, ko) => Object.assign(indexedDB.open("resnet-training"), { onsuccess: (e) => ok(e.target.result), onerror: (e) => ko(e.target.error) }));
    const tx = db.transaction("snapshots");
    const store = tx.objectStore("snapshots");
    const [keys, values] = await Promise.all(
      [store.getAllKeys(), store.getAll()].map((r) => new Promise((ok, ko) => Object.assign(r, { onsuccess: () => ok(r.result), onerror: () => ko(r.error) }))),
    );
    db.close();
    const out = {};
    keys.forEach(([id, generation], i) => {
      const v = values[i];
      (out[id] ??= []).push({ generation, step: v?.step, nets: v?.nets?.map((n) => n.name), bytes: v?.nets?.map((n) => n.bytes.byteLength) });
    });
    for (const g of Object.values(out)) g.sort((a, b) => b.generation - a.generation);
    return out;
  });
}

/** Cuts every net's bytes of the newest generation of this tab's session to half. */
function truncateNewest(page) {
  return page.evaluate(async () => {
    const id = sessionStorage.getItem("resnet-training-session");
    const db = await new Promise((ok, ko) => Object.assign(indexedDB.open("resnet-training"), { onsuccess: (e) => ok(e.target.result), onerror: (e) => ko(e.target.error) }));
    const req = (r) => new Promise((ok, ko) => Object.assign(r, { onsuccess: () => ok(r.result), onerror: () => ko(r.error) }));
    const tx = db.transaction("snapshots", "readwrite");
    const store = tx.objectStore("snapshots");
    const keys = (await req(store.getAllKeys())).filter((k) => k[0] === id).sort((a, b) => b[1] - a[1]);
    const record = await req(store.get(keys[0]));
    for (const n of record.nets) n.bytes = n.bytes.slice(0, Math.floor(n.bytes.byteLength / 2));
    await req(store.put(record, keys[0]));
    await new Promise((ok) => (tx.oncomplete = ok));
    db.close();
    return { step: record.step, bytes: record.nets.map((n) => n.bytes.byteLength) };
  });
}

/**
 * Damages both generations of this tab's session: the newest becomes a record the page did not
 * write (odd fields), the previous one's bytes are cut to half.
 */
function damageBoth(page) {
  return page.evaluate(async () => {
    const id = sessionStorage.getItem("resnet-training-session");
    const db = await new Promise((ok, ko) => Object.assign(indexedDB.open("resnet-training"), { onsuccess: (e) => ok(e.target.result), onerror: (e) => ko(e.target.error) }));
    const req = (r) => new Promise((ok, ko) => Object.assign(r, { onsuccess: () => ok(r.result), onerror: () => ko(r.error) }));
    const tx = db.transaction("snapshots", "readwrite");
    const store = tx.objectStore("snapshots");
    const keys = (await req(store.getAllKeys())).filter((k) => k[0] === id).sort((a, b) => b[1] - a[1]);
    await req(store.put({ nets: "not a snapshot", step: "eleven" }, keys[0]));
    const previous = await req(store.get(keys[1]));
    for (const n of previous.nets) n.bytes = n.bytes.slice(0, 1000);
    await req(store.put(previous, keys[1]));
    await new Promise((ok) => (tx.oncomplete = ok));
    db.close();
    return keys.length;
  });
}

/** Sessions of tabs long gone, saved before anything else here (to see the oldest pruned). */
function addOldSessions(page, count) {
  return page.evaluate(async (count) => {
    const db = await new Promise((ok, ko) => Object.assign(indexedDB.open("resnet-training"), { onsuccess: (e) => ok(e.target.result), onerror: (e) => ko(e.target.error) }));
    const tx = db.transaction("snapshots", "readwrite");
    for (let i = 1; i <= count; i++) tx.objectStore("snapshots").put({ note: "an old session" }, [`old-${i}`, i]);
    await new Promise((ok) => (tx.oncomplete = ok));
    db.close();
  }, count);
}

let failed = false;
try {
  // ---- (a) two pages of one origin train at once, then each restores its own run
  const [a, b] = await Promise.all([newPage("A"), newPage("B")]);
  await Promise.all([fill(a, RUNS.A), fill(b, RUNS.B)]);
  await Promise.all([a.click("#train-start"), b.click("#train-start")]);
  await Promise.all([waitSteps(a, 4), waitSteps(b, 4)]);
  check((await a.textContent("#backend-badge")).startsWith("CPU"), "the runs train on the CPU backend");
  log("both pages train");
  // A saves first, B after: B's session is the most recently saved.
  const savedA = await pauseAndSave(a);
  const savedB = await pauseAndSave(b);
  log(`A saved at step ${savedA}, B at step ${savedB}`);
  await Promise.all([a.reload(), b.reload()]);
  await Promise.all([ready(a), ready(b)]);
  const [offerA, offerB] = await Promise.all([bannerText(a), bannerText(b)]);
  check(offerA.includes("This tab's") && offerA.includes("(residual,") && offerA.includes(`step ${savedA}, saved`), `after reloading, page A offers its own session: "${offerA}"`);
  check(offerB.includes("This tab's") && offerB.includes("(plain,") && offerB.includes(`step ${savedB}, saved`), `after reloading, page B offers its own session: "${offerB}"`);
  const [restoredA, restoredB] = await Promise.all([restore(a), restore(b)]);
  const [formA, formB] = await Promise.all([form(a), form(b)]);
  check(restoredA === savedA && formA.lr === RUNS.A.lr && formA.iterations === RUNS.A.iterations, `page A restored its own run: step ${restoredA}, lr ${formA.lr}, ${formA.iterations} iterations`);
  check(restoredB === savedB && formB.lr === RUNS.B.lr && formB.iterations === RUNS.B.iterations, `page B restored its own run: step ${restoredB}, lr ${formB.lr}, ${formB.iterations} iterations`);
  log("both restored");

  // A duplicate of tab A (its sessionStorage copied, A still open) does not take A's session:
  // it is a fresh tab, offered the most recently saved session (B's).
  const idA = await a.evaluate(() => sessionStorage.getItem("resnet-training-session"));
  const dup = await newPage("A's duplicate", { sessionId: idA });
  const offerDup = await bannerText(dup);
  check(offerDup.includes("most recently saved") && offerDup.includes("(plain,"), `a duplicate of tab A, A still open, is offered the most recently saved session: "${offerDup}"`);
  await dup.close();

  // ---- (c) B is closed while the snapshot of its pause is being written
  await b.click("#train-pause"); // resume
  await waitSteps(b, savedB + 2);
  await b.evaluate(() => (window.__e2eCloseOnWrite = true));
  const lastB = await steps(b);
  const closed = b.waitForEvent("close", { timeout: TIMEOUT });
  await b.click("#train-pause").catch(() => {}); // the page may close before the click returns
  await closed;
  log(`page B closed during a snapshot write (it had shown step ${lastB})`);
  const d = await newPage("D");
  const offerD = await bannerText(d);
  check(offerD.includes("most recently saved") && offerD.includes("(plain,"), `a new page offers the most recently saved session, B's: "${offerD}"`);
  const offeredStep = Number(/step (\d+), saved/.exec(offerD)?.[1]);
  const restoredD = await restore(d);
  const formD = await form(d);
  check(restoredD === offeredStep && restoredD >= savedB && formD.lr === RUNS.B.lr, `the new page restored B's run at step ${restoredD} (B's earlier save: step ${savedB}; ${restoredD > savedB ? "a save was committed before the close" : "the write in flight at the close did not land"})`);
  await d.click("#train-pause"); // resume
  await waitSteps(d, restoredD + 2);
  check((await steps(d)) > restoredD, `and trains on from there (step ${await steps(d)})`);
  await pauseAndSave(d);
  await d.close();

  // ---- (b) A's newest snapshot is damaged in IndexedDB
  await a.click("#train-pause"); // resume
  await waitSteps(a, savedA + 2);
  const newestA = await pauseAndSave(a);
  const keptA = (await readStore(a))[idA].map((g) => g.step);
  // The crate also snapshots at each epoch's end (two steps here): the pause's snapshot may
  // follow one at the same step.
  check(keptA.length === 2 && keptA[0] === newestA, `page A keeps two generations of its session: steps ${keptA}`);
  const previousA = keptA[1];
  const damaged = await truncateNewest(a);
  check(damaged.step === newestA, `truncated the newest snapshot of page A (step ${damaged.step}) to ${damaged.bytes} bytes`);
  await addOldSessions(a, 3);
  await a.reload();
  await ready(a);
  const offerDamaged = await bannerText(a);
  check(offerDamaged.includes(`step ${newestA}, saved`), `page A offers its newest snapshot: "${offerDamaged}"`);
  const fallback = await restore(a);
  const notice = await a.textContent("#session-text");
  const status = await a.textContent("#train-status");
  await screenshot(a, "faults-damaged-snapshot");
  check(fallback === previousA, `the previous generation was restored: step ${fallback} (the damaged newest: step ${newestA})`);
  check(
    notice.includes(`newest snapshot (step ${newestA},`) && notice.includes("is damaged") && notice.includes(`previous snapshot (step ${previousA},`) && notice.includes("was restored instead"),
    `the banner names the damaged snapshot: "${notice}"`,
  );
  check(status.includes("newest snapshot was damaged"), `and so does the status line: "${status}"`);
  check(await a.isHidden("#session-restore"), "the banner offers no second restore");
  const formA2 = await form(a);
  check(formA2.lr === RUNS.A.lr, "it is page A's run");
  await a.click("#train-pause"); // resume
  await waitSteps(a, previousA + 2);
  check((await steps(a)) > previousA, `training continues from the previous generation (step ${await steps(a)})`);
  const afterA = await pauseAndSave(a);
  const stored = await readStore(a);
  const generationsA = stored[idA]?.map((g) => g.step);
  check(generationsA?.length === 2 && generationsA[0] === afterA && !stored[idA].some((g) => g.bytes.includes(damaged.bytes[0])), `the damaged generation is gone; page A keeps the new one and the one before: steps ${generationsA}`);
  const ids = Object.keys(stored);
  check(ids.length === 3 && !ids.includes("old-1") && !ids.includes("old-2"), `at most three sessions are kept, the most recently saved: ${ids.join(", ")}`);

  // ---- (b') both generations damaged, one of them not even a record the page wrote: said so,
  // nothing restored, the page usable; Discard deletes that session only.
  check((await damageBoth(a)) === 2, "damaged both generations of page A's session (an odd record, truncated bytes)");
  await a.reload();
  await ready(a);
  const offerOdd = await bannerText(a);
  check(offerOdd.includes("The newest snapshot (saved") && offerOdd.includes("is damaged") && offerOdd.includes(`previous snapshot of this session (residual, depth 20, step ${generationsA[1]},`), `an odd newest record is named as damaged and the previous one offered: "${offerOdd}"`);
  await a.click("#session-restore");
  await a.waitForFunction(() => document.querySelector("#session-text").textContent.includes("No older snapshot is kept"), null, { timeout: TIMEOUT });
  const lost = await a.textContent("#session-text");
  await screenshot(a, "faults-all-damaged");
  check(lost.includes("The newest snapshot") && lost.includes("and the one before it") && lost.includes("are damaged"), `both damaged generations are named, nothing is restored: "${lost}"`);
  check((await a.getAttribute("#view-train", "data-state")) === "idle" && !(await a.isDisabled("#train-start")), "the page stays usable: Start is offered");
  await a.click("#session-discard");
  await a.waitForSelector("#session-banner", { state: "hidden", timeout: TIMEOUT });
  const left = await readStore(a);
  check(!left[idA] && Object.keys(left).length === 2, `Discard deleted that session only (${Object.keys(left).length} others kept)`);
  check(errors.length === 0, `no uncaught page errors${errors.length ? `: ${errors.join("; ")}` : ""}`);
} catch (err) {
  failed = true;
  console.error(err);
  for (const [i, p] of context.pages().entries()) await screenshot(p, `faults-failed-${i}`).catch(() => {});
} finally {
  await browser.close();
  server.close();
}
log("done");
if (failed) process.exit(1);
console.log("\nsaved-session faults end-to-end: all checks passed");
