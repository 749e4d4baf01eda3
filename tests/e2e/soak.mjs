// A memory soak of the real page in headless Chromium: three phases, each in a fresh browser,
//   classify-webgpu  N classifications in the Classify view on WebGPU (SwiftShader here),
//   classify-cpu     N classifications with WebGPU off (the CPU/WebAssembly fallback),
//   train-cpu        M training steps in the Train view on the CPU backend: one ResNet-20 on
//                    64 Shapes images, batch 2 (the smallest the page trains), with the page's
//                    evaluations every 100 steps, examples, confusion matrix and snapshots,
// driven the way a user does: a click on a sample image per classification (the page fetches
// it, previews it and asks the worker, as for a dropped file), the Train view's form and Start
// button (the steps are read from the view's public `resnet:train` event, as train.mjs does).
//
// What is measured, at 21 points of each phase (every 5% of the work), each after a forced
// garbage collection in the page and in the model worker (what a collection frees is no leak):
//   WebAssembly memory   the worker's wasm linear memory (memory.buffer.byteLength), from the
//                        worker's `memory` request: the figure the backend badge's tooltip shows
//   worker JS heap       Runtime.getHeapUsage of the worker's own CDP target: its V8 heap,
//   worker ArrayBuffers  the ArrayBuffer backing stores it holds (images, snapshots, results),
//   worker Blink heap    and its Blink (Oilpan) objects: WebGPU's GPUBuffer and the like
//   page JS heap, page ArrayBuffers, page Blink heap (DOM, canvases, images), DOM nodes, event
//                        listeners: the same for the page (and CDP Performance.getMetrics)
//   renderer RSS, GPU process RSS   resident memory of Chromium's processes (Linux /proc): the
//                        renderer holds the page, the worker and its wasm memory; the GPU process
//                        holds WebGPU's buffers (SwiftShader keeps "GPU memory" in it)
//   UA-specific memory   performance.measureUserAgentSpecificMemory(), only when the page is
//                        cross-origin isolated; scripts/serve.mjs sends no COOP/COEP headers, so
//                        only with --isolated (this script's server then adds them, and Chromium
//                        runs with ForceEagerMeasureMemory so that each measurement answers at once)
//
// The verdict, per phase and figure: the first 10% of the work is warm-up (for training, also
// everything up to just past the first evaluation, at step 100, whose batches set the wasm
// memory's high-water mark; the first snapshot is taken after 30 s, well inside it on a full
// run). "start" is the median of the first three samples after the warm-up, "end" the median of
// the last three, so one late collection or a sample taken mid-evaluation does not decide.
// The figure GREW when end - start exceeds its tolerance:
//   WebAssembly memory              2% + 1 MB   (it never shrinks; after warm-up it stays put:
//                                                the allocator reuses what the first batches
//                                                freed, so any new page of memory is suspect)
//   worker JS heap / ArrayBuffers / Blink heap   5% + 0.5 MB (after a forced collection: at
//                                                most 0.04 MB of drift seen in 1,000 images)
//   page JS heap / ArrayBuffers / Blink heap     5% + 1 MB, and per unit of work:
//     training, page JS heap: 600 B a step (the Train view keeps every step's loss, error, rate,
//       throughput and per-layer gradient norms: 0.5 KB a step of ResNet-20 in heap snapshots)
//     classifying, page Blink heap: 1 KB a classification (DevTools' own record of each request,
//       blink::NetworkResourcesData::ResourceData, ~0.3 KB each, two requests a click: the
//       sample's fetch and the preview's blob URL; Playwright keeps the Network domain enabled)
//   DOM nodes                       5% + 100;    event listeners  5% + 20
//   renderer / GPU process RSS      10% + 32 MB  (allocator and compositor slack, as scripts/soak.sh;
//                                                seen: the renderer's RSS climbing ~16 KB a
//                                                classification on WebGPU, +16 MB in 1,000, in
//                                                native memory outside every heap above; ~5 KB
//                                                on the CPU; not explained yet)
//   UA-specific memory              10% + 8 MB
// A real leak fails (both seen failing, injected into worker.js by hand): the worker keeping
// each classified image's bytes (2-3 KB) grows the worker's ArrayBuffers by 2.3 MB between the
// windows of a 1,000-image run; keeping a wasm object per classification (a Dataset of 20
// decoded copies of the image, never freed) grows the WebAssembly memory by 25 MB in 300. A
// short smoke (--classifications 100 --steps 200) catches only coarse leaks.
//
// Besides memory, every classification of a sample must name the same top-1 class as its first
// one did (a corrupted model or buffer would show), and the run must reach its last step.
//
//   node tests/e2e/soak.mjs [--classifications 1000] [--steps 2000]
//                           [--phases classify-webgpu,classify-cpu,train-cpu] [--isolated]
// Prints the figures as a table at the end (every sample goes to test-artifacts/soak-samples.json);
// exits 1 naming what grew. Needs pkg/ built.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { start } from "../../scripts/serve.mjs";
import { artifacts, launch, open, screenshot } from "./browser.mjs";

const PHASES = ["classify-webgpu", "classify-cpu", "train-cpu"];
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const classifications = Number(arg("classifications", 1000));
const steps = Number(arg("steps", 2000));
const phases = arg("phases", PHASES.join(",")).split(",");
const isolated = process.argv.includes("--isolated");
if (!(Number.isInteger(classifications) && classifications >= 20)) throw new Error("--classifications: a whole number, at least 20");
if (!(Number.isInteger(steps) && steps >= 200)) throw new Error("--steps: a whole number, at least 200 (the first evaluation, at step 100, is warm-up)");
for (const p of phases) if (!PHASES.includes(p)) throw new Error(`--phases: unknown phase '${p}' (${PHASES.join(", ")})`);

const INTERVALS = 20; // samples at every 5% of the work, and one before it
const WINDOW = 3; // samples in the start and end windows
const TIMEOUT = 600_000;
const EVAL_EVERY = 100; // the Train view's evaluation cadence (www/js/train/controls.js)
const TRAIN = { images: 64, batch: 2, lr: 0.01, depth: 20 };
const MB = 1e6;

/** What is measured: its name, unit and tolerance (allowed growth from start to end). */
const METRICS = [
  { key: "wasm", name: "WebAssembly memory", unit: MB, rel: 0.02, abs: 1 * MB },
  { key: "workerHeap", name: "worker JS heap", unit: MB, rel: 0.05, abs: 0.5 * MB },
  { key: "workerBuffers", name: "worker ArrayBuffers", unit: MB, rel: 0.05, abs: 0.5 * MB },
  { key: "workerBlink", name: "worker Blink heap", unit: MB, rel: 0.05, abs: 0.5 * MB },
  { key: "pageHeap", name: "page JS heap", unit: MB, rel: 0.05, abs: 1 * MB, per: { train: 600 } },
  { key: "pageBlink", name: "page Blink heap", unit: MB, rel: 0.05, abs: 1 * MB, per: { classify: 1000 } },
  { key: "pageBuffers", name: "page ArrayBuffers", unit: MB, rel: 0.05, abs: 1 * MB },
  { key: "nodes", name: "DOM nodes", unit: 1, rel: 0.05, abs: 100 },
  { key: "listeners", name: "event listeners", unit: 1, rel: 0.05, abs: 20 },
  { key: "rendererRss", name: "renderer RSS", unit: MB, rel: 0.1, abs: 32 * MB },
  { key: "gpuRss", name: "GPU process RSS", unit: MB, rel: 0.1, abs: 32 * MB },
  { key: "uaMemory", name: "UA-specific memory", unit: MB, rel: 0.1, abs: 8 * MB },
];

const began = Date.now();
const seconds = (since) => ((Date.now() - since) / 1000).toFixed(0);
const log = (message) => console.log(`  [${seconds(began)} s] ${message}`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const server = await start({ port: 0 });
if (isolated) {
  // Cross-origin isolation, so that the page may call measureUserAgentSpecificMemory(); every
  // resource is the page's own, so require-corp blocks nothing.
  server.prependListener("request", (_req, res) => {
    res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
  });
}
const url = `http://127.0.0.1:${server.address().port}/`;

// ------------------------------------------------------------------ measuring

/** Chromium's processes under this one, by type ("renderer", "gpu-process", …), with RSS. */
function chromiumRss() {
  const out = { renderer: 0, gpu: 0 };
  let entries;
  try {
    entries = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return null; // not Linux
  }
  const parent = new Map();
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      parent.set(pid, stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {}
  }
  const ours = (pid) => {
    for (let p = pid, hops = 0; p && p !== "0" && hops < 64; p = parent.get(p), hops++) if (p === String(process.pid)) return true;
    return false;
  };
  for (const pid of entries) {
    if (pid === String(process.pid) || !ours(pid)) continue;
    try {
      const type = /--type=([\w-]+)/.exec(readFileSync(`/proc/${pid}/cmdline`, "utf8"))?.[1];
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
      if (type === "renderer") out.renderer += rss;
      else if (type === "gpu-process") out.gpu += rss;
    } catch {}
  }
  return out;
}

/**
 * The page's and its model worker's memory. The worker is reached through its own CDP target
 * (a browser-level session attached to it, messages relayed by Target.sendMessageToTarget).
 */
async function probe(browser, page) {
  const pageCdp = await page.context().newCDPSession(page);
  await pageCdp.send("Performance.enable");
  const cdp = await browser.newBrowserCDPSession();
  const { targetInfos } = await cdp.send("Target.getTargets");
  const workers = targetInfos.filter((t) => t.type === "worker" && new URL(t.url).pathname === "/js/worker.js");
  if (workers.length !== 1) throw new Error(`expected one model worker target, found ${workers.length}`);
  const { sessionId } = await cdp.send("Target.attachToTarget", { targetId: workers[0].targetId, flatten: false });
  let detached = false;
  cdp.on("Target.detachedFromTarget", (e) => {
    if (e.sessionId === sessionId) detached = true;
  });
  const pending = new Map();
  let nextId = 1;
  cdp.on("Target.receivedMessageFromTarget", (e) => {
    if (e.sessionId !== sessionId) return;
    const message = JSON.parse(e.message);
    const answer = pending.get(message.id);
    if (!answer) return;
    pending.delete(message.id);
    if (message.error) answer.reject(new Error(`worker CDP: ${message.error.message}`));
    else answer.resolve(message.result);
  });
  const worker = (method, params = {}) =>
    new Promise((resolve, reject) => {
      if (detached) return reject(new Error("the model worker went away during the soak (was it restarted?)"));
      const id = nextId++;
      pending.set(id, { resolve, reject });
      cdp.send("Target.sendMessageToTarget", { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
    });

  return async function sample() {
    // Measuring the UA-specific memory (cross-origin isolated pages only) resolves at a
    // collection: start it, then collect.
    const ua = page.evaluate(() => (self.crossOriginIsolated && performance.measureUserAgentSpecificMemory ? performance.measureUserAgentSpecificMemory().then((m) => m.bytes) : null));
    await worker("HeapProfiler.collectGarbage");
    await pageCdp.send("HeapProfiler.collectGarbage");
    const w = await worker("Runtime.getHeapUsage");
    const p = await pageCdp.send("Runtime.getHeapUsage");
    const { metrics } = await pageCdp.send("Performance.getMetrics");
    const metric = (name) => metrics.find((m) => m.name === name)?.value;
    // The worker's own answer to the page's `memory` request, through the page's worker client
    // (the request the backend badge's tooltip makes).
    const { wasmBytes } = await page.evaluate(() => import("/js/shell.js").then((m) => m.worker.call("memory")));
    const rss = chromiumRss();
    return {
      wasm: wasmBytes,
      workerHeap: w.usedSize,
      workerBuffers: w.backingStorageSize,
      workerBlink: w.embedderHeapUsedSize,
      pageHeap: p.usedSize,
      pageBlink: p.embedderHeapUsedSize,
      pageBuffers: p.backingStorageSize,
      nodes: metric("Nodes"),
      listeners: metric("JSEventListeners"),
      rendererRss: rss?.renderer,
      gpuRss: rss?.gpu,
      uaMemory: (await ua) ?? undefined,
    };
  };
}

/** The sample points: positions 0, 5%, …, 100% of `total` (whole units of work). */
const points = (total) => Array.from({ length: INTERVALS + 1 }, (_, i) => Math.round((total * i) / INTERVALS));

/**
 * The verdict on one phase's samples ([{ at, figures }]), warm-up ending at `warmup`; `kind`
 * ("classify" or "train") picks each figure's allowance per unit of work between the windows.
 */
function judge(phase, samples, warmup, kind) {
  const after = samples.filter((s) => s.at >= warmup);
  if (after.length < 2 * WINDOW) throw new Error(`${phase}: only ${after.length} samples after the warm-up: too short to judge`);
  const [first, last] = [after.slice(0, WINDOW), after.slice(-WINDOW)];
  const units = median(last.map((s) => s.at)) - median(first.map((s) => s.at)); // work between the windows
  const rows = [];
  for (const m of METRICS) {
    const values = samples.map((s) => s.figures[m.key]);
    if (values.some((v) => v == null)) continue; // not measured here
    const startValue = median(first.map((s) => s.figures[m.key]));
    const endValue = median(last.map((s) => s.figures[m.key]));
    const allowed = m.rel * startValue + m.abs + (m.per?.[kind] ?? 0) * units;
    const growth = endValue - startValue;
    rows.push({ phase, metric: m, before: values[0], start: startValue, end: endValue, peak: Math.max(...values), growth, perUnit: growth / units, grew: growth > allowed, allowed });
  }
  return rows;
}

// ------------------------------------------------------------------ the phases

async function openPage(browser, name) {
  const { page, errors } = await open(browser, url, name);
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  // What the Train view shows, from its public `resnet:train` event (test code, as train.mjs).
  await page.evaluate(() => {
    document.addEventListener("resnet:train", (e) => {
      window.__observed = e.detail;
    });
  });
  return { page, errors };
}

/** The backend badge's tooltip, as a user pointing at it sees it. */
async function badgeTooltip(page) {
  await page.mouse.move(0, 0);
  await page.hover("#backend-badge");
  await page.waitForFunction(() => document.getElementById("backend-badge").title.includes("Model worker memory"), null, { timeout: 30_000 });
  const title = await page.getAttribute("#backend-badge", "title");
  await page.mouse.move(0, 0);
  return title;
}

/** Clicks `count` sample images in turn, from the `from`-th; each waits for its prediction. */
function clickSamples(page, from, count) {
  return page.evaluate(
    async ({ from, count }) => {
      const buttons = [...document.querySelectorAll("#samples button.sample")];
      const list = document.getElementById("predictions");
      const results = [];
      for (let i = from; i < from + count; i++) {
        const button = buttons[i % buttons.length];
        // The page replaces the list's items once per answer (a prediction, or an error).
        const answered = new Promise((resolve) => {
          const observer = new MutationObserver(() => {
            observer.disconnect();
            resolve();
          });
          observer.observe(list, { childList: true });
        });
        button.click();
        await answered;
        const error = document.getElementById("error");
        if (!error.hidden) return { error: `${button.title}: ${error.textContent}` };
        results.push({ sample: i % buttons.length, label: button.title, top: list.querySelector("li .label")?.textContent, latency: document.getElementById("latency").textContent });
      }
      return { results, samples: buttons.length };
    },
    { from, count },
  );
}

async function classifyPhase(browser, backend) {
  const { page, errors } = await openPage(browser, `classify-${backend}`);
  const badge = await page.textContent("#backend-badge");
  if (!badge.startsWith(backend === "webgpu" ? "WebGPU" : "CPU")) throw new Error(`the page runs "${badge}", not ${backend}`);
  log(`classify-${backend}: ${badge}; ${classifications} classifications`);
  const sample = await probe(browser, page);
  const samples = [];
  const first = new Map(); // sample index -> first top-1
  let done = 0;
  let right = 0;
  let latency = "";
  for (const at of points(classifications)) {
    if (at > done) {
      const r = await clickSamples(page, done, at - done);
      if (r.error) throw new Error(`classification ${done + 1}+ failed: ${r.error}`);
      for (const c of r.results) {
        if (!first.has(c.sample)) first.set(c.sample, c.top);
        else if (first.get(c.sample) !== c.top) throw new Error(`sample ${c.label} (#${c.sample}) was '${first.get(c.sample)}' and is now '${c.top}'`);
        if (c.top === c.label) right++;
      }
      latency = r.results.at(-1).latency;
      done = at;
    }
    samples.push({ at, figures: await sample() });
  }
  const tooltip = await badgeTooltip(page);
  if (errors.length) throw new Error(`uncaught page errors: ${errors.map(String).join("; ")}`);
  log(`classify-${backend}: ${done} done, ${right} named as their sample (last: ${latency}); tooltip "${tooltip.replace(/\n/g, " / ")}"`);
  await page.close();
  return { samples, warmup: Math.round(classifications / 10), note: `${right}/${done} top-1 = the sample's class` };
}

async function trainPhase(browser) {
  const { page, errors } = await openPage(browser, "train-cpu");
  await page.selectOption("#device-select", "cpu");
  await page.click("#tab-train");
  await page.selectOption("#train-mode", "single");
  await page.selectOption("#train-depth", String(TRAIN.depth));
  await page.selectOption("#train-data", "shapes");
  await page.fill("#train-size", String(TRAIN.images));
  await page.fill("#train-batch", String(TRAIN.batch));
  await page.fill("#train-lr", String(TRAIN.lr));
  await page.fill("#train-iterations", String(steps));
  log(`train-cpu: ResNet-${TRAIN.depth} on ${TRAIN.images} Shapes images, batch ${TRAIN.batch}, ${steps} steps`);
  const sample = await probe(browser, page);
  const samples = [{ at: 0, figures: await sample() }];
  await page.click("#train-start");
  for (const [i, at] of points(steps).entries()) {
    if (i === 0) continue;
    const reached = await page.waitForFunction(
      (n) => {
        const o = window.__observed;
        const state = document.querySelector("#view-train").dataset.state;
        if (state === "error" || !document.getElementById("error").hidden) return { error: document.getElementById("error").textContent || document.getElementById("train-status").textContent };
        const step = o?.step ?? 0;
        // The last sample: after the run finished (its final evaluation included).
        if (step >= n && (n < o.total || state === "paused")) return { step, state };
        if (state === "paused" && step < n) return { error: `the run stopped at step ${step}: ${document.getElementById("train-status").textContent}` };
        return false;
      },
      at,
      { timeout: TIMEOUT, polling: 100 },
    );
    const r = await reached.jsonValue();
    if (r.error) throw new Error(`training: ${r.error}`);
    samples.push({ at, figures: await sample() });
    if (i % 5 === 0) log(`train-cpu: step ${r.step}`);
  }
  const status = await page.textContent("#train-status");
  const tooltip = await badgeTooltip(page);
  if (errors.length) throw new Error(`uncaught page errors: ${errors.map(String).join("; ")}`);
  log(`train-cpu: ${status}; tooltip "${tooltip.replace(/\n/g, " / ")}"`);
  await screenshot(page, "soak-train");
  await page.close();
  // Warm-up: 10% of the run, and at least up to just past the first evaluation.
  return { samples, warmup: Math.max(Math.round(steps / 10), EVAL_EVERY + Math.round(steps / INTERVALS)), note: status };
}

// ------------------------------------------------------------------ main

const rows = [];
const timings = [];
const recorded = []; // every sample, saved to test-artifacts/soak-samples.json
let failed = false;
for (const phase of phases) {
  const since = Date.now();
  // Cross-origin isolated: measureUserAgentSpecificMemory() answers at once instead of at
  // Chromium's next scheduled measurement (~10 s later).
  const browser = await launch({ webgpu: phase === "classify-webgpu", extraArgs: isolated ? ["--enable-blink-features=ForceEagerMeasureMemory"] : [] });
  try {
    const result = phase === "train-cpu" ? await trainPhase(browser) : await classifyPhase(browser, phase === "classify-webgpu" ? "webgpu" : "cpu");
    recorded.push({ phase, warmup: result.warmup, samples: result.samples });
    rows.push(...judge(phase, result.samples, result.warmup, phase === "train-cpu" ? "train" : "classify"));
    timings.push({ phase, seconds: (Date.now() - since) / 1000, note: result.note, warmup: result.warmup });
  } catch (err) {
    failed = true;
    console.error(`  ${phase}: ${err.stack ?? err}`);
    for (const p of browser.contexts().flatMap((c) => c.pages())) await screenshot(p, `soak-${phase}-failed`).catch(() => {});
    timings.push({ phase, seconds: (Date.now() - since) / 1000, note: "FAILED" });
  } finally {
    await browser.close();
  }
}
server.close();
const samplesFile = resolve(artifacts, "soak-samples.json");
writeFileSync(samplesFile, JSON.stringify({ classifications, steps, isolated, phases: recorded }, null, 1));

const format = (v, unit) => (v == null ? "–" : unit === 1 ? String(Math.round(v)) : (v / unit).toFixed(2));
const sign = (v, unit) => (v >= 0 ? "+" : "") + format(v, unit);
const table = [["phase", "figure", "unit", "before", "start", "end", "peak", "end-start", "allowed", "per unit", ""]];
for (const r of rows) {
  const unit = r.metric.unit === 1 ? "count" : "MB";
  const per = r.metric.unit === 1 ? r.perUnit.toFixed(2) : `${Math.round(r.perUnit)} B`;
  table.push([r.phase, r.metric.name, unit, format(r.before, r.metric.unit), format(r.start, r.metric.unit), format(r.end, r.metric.unit), format(r.peak, r.metric.unit), sign(r.growth, r.metric.unit), `+${format(r.allowed, r.metric.unit)}`, per, r.grew ? "GREW" : "flat"]);
}
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
console.log(`\nMemory (before: at 0; start: median of the first ${WINDOW} samples after warm-up; end: of the last ${WINDOW}; peak: of all ${INTERVALS + 1};`);
console.log("per unit: end-start per classification or training step between the windows; MB = 10^6 bytes)");
for (const row of table) console.log("  " + row.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
console.log("\nPhases");
for (const t of timings) console.log(`  ${t.phase.padEnd(16)} ${t.seconds.toFixed(0).padStart(5)} s  warm-up ${t.warmup ?? "–"}  ${t.note}`);
console.log(`  total            ${seconds(began).padStart(5)} s  (--classifications ${classifications} --steps ${steps})`);
console.log(`  every sample: ${samplesFile}`);

const grew = rows.filter((r) => r.grew);
if (grew.length) {
  console.error(`\nFAILED: memory grew after warm-up: ${grew.map((r) => `${r.phase} ${r.metric.name} ${sign(r.end - r.start, r.metric.unit)}${r.metric.unit === 1 ? "" : " MB"} (allowed +${format(r.allowed, r.metric.unit)})`).join("; ")}`);
  process.exit(1);
}
if (failed) {
  console.error("\nFAILED: a phase did not complete (see above)");
  process.exit(1);
}
console.log("\nsoak: memory flat after warm-up in every phase");
