// The Train view in headless Chromium on WebGPU: start ResNet-20 and plain-20 side by side,
// see both curves and a falling loss, pause (the step counter stops), lose the GPU device (a
// fault this test injects) and continue on the CPU, run Why residuals work (the gradient
// correlation and the lesion study of both nets) and see their plots, export, reload and
// restore the saved session; train three members of the family side by side (ResNet-20,
// pre-activation ResNet-20, DenseNet-BC-40); then the exported weights evaluated
// natively by `resnet eval` give the test error the page reported.
//   node tests/e2e/train.mjs [path/to/resnet]      (needs pkg/ built and the native binary)
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { start } from "../../scripts/serve.mjs";
import { artifacts, check, checkOwnOrigin, launch, open, root, screenshot } from "./browser.mjs";

const binary = process.argv[2] ?? resolve(process.env.CARGO_TARGET_DIR ?? resolve(root, "target"), "debug/resnet");
const server = await start({ port: 0 });
const url = `http://127.0.0.1:${server.address().port}/`;
const TIMEOUT = 600_000;
// A small run that must visibly learn: 64 Shapes images, no augmentation, so both nets
// memorise them and the loss falls within a few dozen steps.
const ITERATIONS = 24;
const BATCH = 16;
const TRAIN_IMAGES = 64;
const LR = 0.02;
// The page's CPU backend: on this machine's software GPU (SwiftShader) WebGPU trains ResNet-20
// six times slower than WebAssembly on the CPU (scripts/bench-web.mjs), and tests/web.rs already
// trains, snapshots and restores on WebGPU. A real GPU takes the same code path.
const DEVICE = process.env.TRAIN_E2E_DEVICE ?? "cpu";
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

// What the Train view shows is read from its public `resnet:train` event (documented in
// www/js/train/index.js): after every training progress, evaluation and status message,
// #view-train dispatches it, bubbling, with a snapshot of every net's info, curves and latest
// evaluation. This script, run in every document the page loads (reloads included), keeps the
// latest detail in `window.__observed` for the checks below: test code, not the page's.
function observeTraining() {
  document.addEventListener("resnet:train", (e) => {
    window.__observed = e.detail;
  });
}

// Fault injection, from the test only (the page ships no test hooks). page.route serves every
// copy of the model worker's script (js/worker.js: the first worker, and the fresh one the page
// starts to recover) with FAULT_HOOK appended. Appended, it is part of the worker's module: it
// imports the package's Trainer, of both builds (the very module instances the worker imports,
// same URLs: on a cross-origin-isolated page the CPU trains on pkg/threads/), and
// wraps Trainer.prototype.run, the crate's run loop the worker calls for every training round.
// Armed through Playwright's handle on that worker (`self.e2eLoseDeviceOnNextStep()`), the next
// round rejects with the `device` error a lost GPU device gives, and the worker's own error
// path reports it to the page. The one-shot flag lives in that worker instance only: the fresh
// worker the page restarts into gets the hook unarmed and trains normally. Only the package's
// public API (Trainer.run) and the worker's import of it are assumed, no private name.
const PACKAGE_IMPORT = 'from "../pkg/resnet.js";';
const FAULT_HOOK = `
// ---- appended by tests/e2e/train.mjs: fault injection, not part of the page ----
import { Trainer as FaultInjectedTrainer } from "../pkg/resnet.js";
import { Trainer as FaultInjectedThreadedTrainer } from "../pkg/threads/resnet.js";
{
  let loseDevice = false;
  for (const Trainer of [FaultInjectedTrainer, FaultInjectedThreadedTrainer]) {
    const run = Trainer.prototype.run;
    Trainer.prototype.run = function (onEvent) {
      if (!loseDevice) return run.call(this, onEvent);
      loseDevice = false;
      return Promise.reject(Object.assign(new Error("the GPU device was lost (simulated)"), { kind: "device" }));
    };
  }
  self.e2eLoseDeviceOnNextStep = () => {
    loseDevice = true;
  };
}
`;

async function serveWorkerWithFaultHook(route) {
  const response = await route.fetch();
  const source = await response.text();
  // Unchanged when the worker no longer imports the package this way: the check where the
  // hook is armed then fails with a clear message.
  const body = source.includes(PACKAGE_IMPORT) ? source + FAULT_HOOK : source;
  // The length (and any encoding) of the original would not fit the new body: Playwright sets
  // the length of this one.
  const headers = { ...response.headers() };
  delete headers["content-length"];
  delete headers["content-encoding"];
  await route.fulfill({ response, headers, body });
}

/** Makes the current model worker's next training round fail like a lost GPU device. */
async function loseDeviceOnNextStep(page) {
  const workers = page.workers().filter((w) => new URL(w.url()).pathname.endsWith("/js/worker.js"));
  check(workers.length === 1, `one model worker runs (${workers.map((w) => w.url()).join(", ")})`);
  const hooked = await workers[0].evaluate(() => typeof self.e2eLoseDeviceOnNextStep === "function");
  check(hooked, "the model worker was served with the test's fault hook (page.route of js/worker.js)");
  await workers[0].evaluate(() => self.e2eLoseDeviceOnNextStep());
  return workers[0];
}

const browser = await launch({ webgpu: true });
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1100 }, acceptDownloads: true });
  const requests = [];
  context.on("request", (r) => requests.push(r.url())); // the page's and its workers'
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`  [page error] ${e}`));
  await page.addInitScript(observeTraining);
  await page.route("**/js/worker.js", serveWorkerWithFaultHook);
  await page.goto(url);
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  await page.selectOption("#device-select", DEVICE);
  await page.click("#tab-train");
  await page.fill("#train-size", String(TRAIN_IMAGES));
  await page.fill("#train-lr", String(LR));
  await page.selectOption("#train-schedule", "constant");
  await page.uncheck("#train-augment");
  await page.fill("#train-batch", String(BATCH));
  await page.fill("#train-iterations", String(ITERATIONS));
  await page.selectOption("#train-depth", "20");
  await page.click("#train-start");

  const steps = (name) => page.evaluate((n) => window.__observed?.nets[n]?.info.stepCount ?? 0, name);
  await page.waitForFunction(() => {
    const nets = Object.values(window.__observed?.nets ?? {});
    return nets.length === 2 && nets.every((n) => n.info.stepCount >= 4);
  }, null, { timeout: TIMEOUT, polling: 500 });
  const curves = await page.evaluate(() => Object.entries(window.__observed.nets).map(([name, n]) => ({ name, points: n.loss.filter((v) => v != null).length, loss: n.loss.filter((v) => v != null) })));
  for (const c of curves) check(c.points >= 4, `chart points for ${c.name}: ${c.points} (losses ${c.loss.map((l) => l.toFixed(2)).join(", ")})`);
  const heat = await page.evaluate(() => [...document.querySelectorAll("canvas.heatmap")].map((c) => c.height));
  check(heat.length === 2 && heat[0] === 20, `gradient heatmaps for both nets, 20 layers each (${heat})`);
  await screenshot(page, "train-running");
  if (DEVICE === "cpu") {
    // The page is cross-origin isolated (scripts/serve.mjs): the CPU trains on the threaded build.
    const badge = await page.textContent("#backend-badge");
    check(/· \d+ threads?$/.test(badge) && !badge.endsWith("· 1 thread"), `the nets train on the threaded build: "${badge}"`);
  }

  // Pause: the counter stops.
  await page.click("#train-pause");
  await page.waitForFunction(() => document.querySelector("#view-train").dataset.state === "paused", null, { timeout: TIMEOUT });
  const paused = await steps("residual");
  await page.waitForTimeout(4000);
  check((await steps("residual")) === paused, `paused: the step counter stays at ${paused}`);

  // The GPU device is lost on the next step: the page offers the snapshot saved at the pause
  // and continues it in a fresh worker on the CPU.
  const lostWorker = await loseDeviceOnNextStep(page);
  let lostWorkerClosed = false;
  lostWorker.on("close", () => (lostWorkerClosed = true));
  await page.click("#train-pause"); // resume → the step fails like a lost device
  await page.waitForSelector("#session-banner:not([hidden])", { timeout: TIMEOUT });
  const offer = await page.textContent("#session-text");
  check(offer.includes("device was lost") && offer.includes(`step ${paused}`), `device loss reported, snapshot offered: "${offer}"`);
  await screenshot(page, "train-device-lost");
  await page.click("#session-restore");
  await page.waitForFunction((n) => document.querySelector("#view-train").dataset.restored === String(n), paused, { timeout: TIMEOUT });
  // A worker with a thread pool (the threaded build's nested workers) goes a few seconds after
  // terminate(), once its pool has gone.
  for (let i = 0; i < 60 && !lostWorkerClosed; i++) await page.waitForTimeout(500);
  const modelWorkers = page.workers().filter((w) => new URL(w.url()).pathname.endsWith("/js/worker.js"));
  check(lostWorkerClosed && modelWorkers.length === 1 && modelWorkers[0] !== lostWorker, "the worker that lost its device was replaced by a fresh one");
  check((await page.textContent("#backend-badge")).startsWith("CPU"), `continued from step ${paused} on the CPU`);

  // Finish the run, then the final evaluation has happened on the final weights.
  await page.click("#train-pause"); // resume
  await page.waitForFunction((n) => {
    const r = window.__observed?.nets.residual;
    return r && r.info.stepCount >= n && r.testError.filter((v) => v != null).length > 0 && document.querySelector("#view-train").dataset.state === "paused";
  }, ITERATIONS, { timeout: TIMEOUT, polling: 500 });
  const eval_ = await page.evaluate(() => window.__observed.nets.residual.lastEval);
  const ends = {};
  for (const name of ["residual", "plain"]) {
    const losses = (await page.evaluate((n) => window.__observed.nets[n].loss, name)).filter((v) => v != null);
    const [first, last] = [mean(losses.slice(0, 4)), mean(losses.slice(-4))];
    ends[name] = last;
    // The residual net must learn fast; its plain twin learns, more slowly (the paper's point).
    const bound = name === "residual" ? 0.8 * first : first;
    check(losses.length >= ITERATIONS && last < bound, `${name} ran ${losses.length} steps and its loss fell: first four ${first.toFixed(3)} → last four ${last.toFixed(3)}`);
  }
  check(ends.residual < ends.plain, `ResNet-20 ends below plain-20 (${ends.residual.toFixed(3)} < ${ends.plain.toFixed(3)})`);
  await page.waitForSelector("#confusion table");
  await page.waitForSelector("#examples figure");
  await screenshot(page, "train-finished");

  // Why residuals work, on the finished (paused) run: first the gradient correlation
  // (Balduzzi et al. 2017) of both nets, then their lesion study (Veit et al. 2016).
  check(!(await page.isDisabled("#train-why")), "the Why residuals work button is enabled once the run has trained");
  const whyStart = Date.now();
  await page.click("#train-why");
  check(await page.isDisabled("#train-why"), "the Why residuals work button is off while it measures");
  await page.waitForFunction(() => window.__observed?.gradients, null, { timeout: TIMEOUT, polling: 500 });
  const gradientSeconds = ((Date.now() - whyStart) / 1000).toFixed(0);
  await page.waitForFunction(() => window.__observed?.lesion, null, { timeout: TIMEOUT, polling: 500 });
  const lesionSeconds = ((Date.now() - whyStart) / 1000).toFixed(0);
  const BLOCKS = ["layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2", "layer3.0", "layer3.1", "layer3.2"];

  // The gradient correlation: ResNet-20's 9 blocks at depths 3, 5, …, 19 (the stem, then two
  // convolutions per block), every value a correlation. Through one block the gradients of an
  // image and of a copy 0.1 σ away are alike for both nets (0.82 at initialisation). How far
  // each falls by depth 19 is the user's finding at this tiny run, not asserted here.
  const gradients = await page.evaluate(() => window.__observed.gradients);
  check(Object.keys(gradients).sort().join() === "plain,residual", `gradient correlation of both nets (${Object.keys(gradients).join(", ")}; ${gradientSeconds} s on ${DEVICE})`);
  for (const [name, report] of Object.entries(gradients)) {
    const blocks = report.blocks.map((b) => b.block);
    const depths = report.blocks.map((b) => b.depth);
    check(blocks.join() === BLOCKS.join() && depths.join() === "3,5,7,9,11,13,15,17,19", `${name}: one correlation per block of ResNet-20, in forward order, at depths ${depths.join(", ")}`);
    const correlations = report.blocks.map((b) => b.correlation);
    check(report.images > 0 && report.noise > 0 && correlations.every((c) => Number.isFinite(c) && c >= -1 && c <= 1), `${name}: on ${report.images} test images (noise ${report.noise.toPrecision(3)}), correlations ${correlations.map((c) => c.toFixed(3)).join(" / ")}`);
    check(correlations[0] > 0.3, `${name}: the gradients of nearby inputs through one block are alike (${correlations[0].toFixed(3)} > 0.3)`);
  }
  const gradientPlot = await page.evaluate(() => {
    const marks = (net) => document.querySelectorAll(`#gradients-plot circle.gradient-mark[data-net="${net}"]`).length;
    return {
      residual: marks("residual"),
      plain: marks("plain"),
      label: document.querySelector("#gradients-plot svg")?.getAttribute("aria-label") ?? "",
      rows: document.querySelectorAll("#gradients-table tbody tr").length,
    };
  });
  check(await page.isVisible("#gradients-plot svg"), "the gradient correlation plot is visible");
  check(gradientPlot.residual === 9 && gradientPlot.plain === 9, `one mark per block per net (${gradientPlot.residual} residual, ${gradientPlot.plain} plain)`);
  check(gradientPlot.label.startsWith("Shattered gradients") && gradientPlot.rows === 9, `the gradient plot is labelled for screen readers, its numbers in a table of ${gradientPlot.rows} rows`);

  // The lesion study: each of ResNet-20's 9 blocks deleted in turn, the two downsampling ones
  // marked, every error a rate. Which net suffers more is the user's finding at this tiny run,
  // not asserted here.
  const lesion = await page.evaluate(() => window.__observed.lesion);
  check(Object.keys(lesion).sort().join() === "plain,residual", `lesion study of both nets (${Object.keys(lesion).join(", ")}; done ${lesionSeconds} s after the click, on ${DEVICE})`);
  const rate = (v) => Number.isFinite(v) && v >= 0 && v <= 1;
  for (const [name, report] of Object.entries(lesion)) {
    const blocks = report.blocks.map((b) => b.block);
    check(blocks.join() === BLOCKS.join(), `${name}: one lesion per block of ResNet-20, in forward order (${blocks.join(", ")})`);
    const down = report.blocks.filter((b) => b.downsampling).map((b) => b.block);
    check(down.join() === "layer2.0,layer3.0", `${name}: the downsampling blocks are layer2.0 and layer3.0 (${down.join(", ")})`);
    const errors = report.blocks.map((b) => b.top1Error);
    check(report.images > 0 && rate(report.intactError) && errors.every(rate), `${name}: on ${report.images} test images, intact ${(report.intactError * 100).toFixed(1)}%, one block deleted ${errors.map((e) => (e * 100).toFixed(1)).join(" / ")}%`);
  }
  // The intact net is the finished run's net: its error is the final evaluation's on the same
  // images (within one image: the study runs the net with its batch norm folded into the convs).
  check(lesion.residual.images === eval_.images && Math.abs(lesion.residual.intactError - eval_.top1Error) <= 1 / eval_.images + 1e-6, `the intact ResNet-20 errs as its final evaluation did (${(eval_.top1Error * 100).toFixed(1)}% on ${eval_.images} images)`);
  const plot = await page.evaluate(() => {
    const marks = (net) => document.querySelectorAll(`#lesion-plot circle.lesion-mark[data-net="${net}"]`).length;
    return {
      residual: marks("residual"),
      plain: marks("plain"),
      intact: document.querySelectorAll("#lesion-plot [data-intact]").length,
      downsampling: [...document.querySelectorAll("#lesion-plot [data-downsampling]")].map((r) => r.dataset.downsampling),
      label: document.querySelector("#lesion-plot svg")?.getAttribute("aria-label") ?? "",
      rows: document.querySelectorAll("#lesion-table tbody tr").length,
    };
  });
  check(await page.isVisible("#lesion-plot svg"), "the lesion plot is visible");
  check(plot.residual === 9 && plot.plain === 9 && plot.intact === 2, `one mark per block per net (${plot.residual} residual, ${plot.plain} plain) and a dashed intact line per net (${plot.intact})`);
  check(plot.downsampling.join() === "layer2.0,layer3.0", `the downsampling blocks are marked in the plot (${plot.downsampling.join(", ")})`);
  check(plot.label.startsWith("Lesion study") && plot.rows === 10, `the plot is labelled for screen readers, its numbers in a table of ${plot.rows} rows (intact + 9 blocks)`);
  check(!(await page.isDisabled("#train-why")), "the Why residuals work button is on again once both studies are shown");
  await screenshot(page, "train-why");

  // Export (a download), then the native CLI evaluates it on the same test images.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#train-export")]);
  const exported = resolve(artifacts, "page-exported.bpk");
  await download.saveAs(exported);
  const bytes = readFileSync(exported);
  check(bytes.length > 1_000_000 && bytes.subarray(0, 4).toString() === "NRUB", `exported ${download.suggestedFilename()} (${bytes.length} bytes, Burnpack)`);
  if (existsSync(binary)) {
    const out = execFileSync(binary, ["eval", "--weights", exported, "--data", "synthetic", "--test-size", String(eval_.images), "--json"], { encoding: "utf8" });
    const native = JSON.parse(out);
    writeFileSync(resolve(artifacts, "page-vs-native-eval.json"), JSON.stringify({ page: eval_, native }, null, 2));
    check(native.images === eval_.images, `native eval on the same ${native.images} test images`);
    check(Math.abs(native.top1Error - eval_.top1Error) < 0.004, `native top-1 error ${(native.top1Error * 100).toFixed(1)}% = page ${(eval_.top1Error * 100).toFixed(1)}%`);
    check(Math.abs(native.loss - eval_.loss) <= 1e-3 * Math.max(1, eval_.loss), `native test loss ${native.loss.toFixed(4)} = page ${eval_.loss.toFixed(4)}`);
  } else {
    throw new Error(`the native binary ${binary} is missing: build it with cargo build`);
  }

  // Reload: the saved session is offered and restored at the step it was saved.
  await page.waitForTimeout(500);
  const saved = Number(await page.getAttribute("#train-note", "data-snapshot"));
  await page.reload();
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  await page.click("#tab-train");
  await page.waitForSelector("#session-banner:not([hidden])", { timeout: TIMEOUT });
  await screenshot(page, "train-restore-offer");
  await page.click("#session-restore");
  await page.waitForFunction(() => document.querySelector("#view-train").dataset.restored, null, { timeout: TIMEOUT });
  const restored = Number(await page.getAttribute("#view-train", "data-restored"));
  check(restored === saved && restored >= ITERATIONS, `restored at step ${restored} (saved at ${saved})`);
  await screenshot(page, "train-restored");

  // Fine-tune the bundled model to three new classes picked as a folder, head only, then use it
  // in the Classify view.
  const folder = resolve(artifacts, "finetune-data");
  rmSync(folder, { recursive: true, force: true });
  execFileSync(binary, ["data", "samples", "--count", "90", "--to", resolve(folder, "all")]);
  const renamed = { disk: "round", ring: "hollow", square: "box" };
  for (const file of readdirSync(resolve(folder, "all"))) {
    const label = file.match(/^\d+-(\w+)\.png$/)?.[1];
    if (!renamed[label]) continue;
    mkdirSync(resolve(folder, "new", renamed[label]), { recursive: true });
    copyFileSync(resolve(folder, "all", file), resolve(folder, "new", renamed[label], file));
  }
  await page.selectOption("#train-mode", "finetune");
  await page.selectOption("#train-data", "folder");
  await page.setInputFiles("#data-folder", resolve(folder, "new"));
  await page.waitForFunction(() => /27 files/.test(document.querySelector("#data-drop-text").textContent), null, { timeout: TIMEOUT });
  await page.check("#train-freeze");
  await page.fill("#train-lr", "0.05");
  await page.fill("#train-batch", "8");
  await page.fill("#train-iterations", "16");
  await page.click("#train-start");
  await page.waitForFunction(() => {
    const net = window.__observed?.nets.single;
    return net && net.info.stepCount >= 16 && document.querySelector("#view-train").dataset.state === "paused";
  }, null, { timeout: TIMEOUT, polling: 500 });
  const tuned = await page.evaluate(() => window.__observed.nets.single.loss.filter((v) => v != null));
  const [tunedFirst, tunedLast] = [mean(tuned.slice(0, 4)), mean(tuned.slice(-4))];
  check(tuned.length >= 16 && tunedLast < 0.8 * tunedFirst, `fine-tuned the bundled ResNet-20 to 3 new classes for ${tuned.length} steps: loss ${tunedFirst.toFixed(3)} → ${tunedLast.toFixed(3)} (first and last four)`);
  await screenshot(page, "train-finetuned");
  await page.click("#train-use");
  await page.waitForFunction(() => document.querySelector("#model-info").textContent.includes("3 classes"), null, { timeout: TIMEOUT });
  const ring = readdirSync(resolve(folder, "new", "hollow"))[0];
  await page.setInputFiles("#file-input", resolve(folder, "new", "hollow", ring));
  await page.waitForFunction(() => document.querySelectorAll("#predictions li").length === 3, null, { timeout: TIMEOUT });
  const labels = await page.$$eval("#predictions li .label", (items) => items.map((l) => l.textContent).sort());
  check(labels.join() === "box,hollow,round", `the Classify view uses the fine-tuned model: predictions over ${labels.join(", ")}`);
  const first = await page.textContent("#predictions li .label");
  check(first === "hollow", `the dropped ring is predicted as its new class 'hollow' (got '${first}')`);
  await screenshot(page, "classify-finetuned");

  // The headline experiment at depth 56: plain-56 and ResNet-56 side by side, heatmaps of 56
  // layers (55 convolutions + fc) filling in.
  // The reload above reset the device menu: ask for this test's backend again.
  await page.selectOption("#device-select", DEVICE);
  await page.click("#tab-train");
  await page.click("#train-reset");
  await page.selectOption("#train-mode", "compare");
  await page.selectOption("#train-data", "shapes");
  await page.selectOption("#train-depth", "56");
  await page.fill("#train-batch", "8");
  // The paper's 0.1 at batch 128, scaled to a batch of 8 (0.05 diverges at this depth).
  await page.fill("#train-lr", "0.01");
  // A run of exactly 16 steps that finishes by itself: the same losses every time (at batch 8
  // the loss is noisy step to step; over 16 steps both nets fall).
  await page.fill("#train-iterations", "16");
  await page.click("#train-start");
  await page.waitForFunction(() => {
    const nets = Object.values(window.__observed?.nets ?? {});
    return nets.length === 2 && nets.every((n) => n.info.stepCount >= 16) && document.querySelector("#view-train").dataset.state === "paused";
  }, null, { timeout: TIMEOUT, polling: 500 });
  const deep = await page.evaluate(() => [...document.querySelectorAll("canvas.heatmap")].map((c) => c.height));
  const nets56 = await page.evaluate(() => Object.values(window.__observed.nets).map((n) => ({ arch: n.info.arch, backend: n.info.backend?.backend, loss: n.loss.filter((v) => v != null) })));
  const arches = nets56.map((n) => n.arch);
  check(deep.length === 2 && deep.every((h) => h === 56), `depth 56: ${arches.join(" and ")} train side by side, heatmaps of ${deep} layers`);
  const ran = DEVICE === "webgpu" ? "webgpu" : "cpu";
  check(nets56.every((n) => n.backend === ran), `depth 56 trained on ${ran}, as asked (${nets56.map((n) => n.backend).join(", ")})`);
  // Both nets train, every loss finite. Whether a loss falls is not checked here: at 16 steps
  // of batch 8 the batch losses are noise (2026-11-30: resnet56's ranged 1.97 to 4.56,
  // plain56's 2.15 to 2.59 around ln 10), and a float-rounding change in the pooling flipped
  // plain56's first-four/last-four means (2.315 → 2.380). Learning is checked above (24 steps
  // of ResNet-20 and plain-20) and natively (tests/train.rs).
  for (const n of nets56) {
    check(n.loss.length === 16 && n.loss.every(Number.isFinite), `${n.arch}: ${n.loss.length} finite losses (${Math.min(...n.loss).toFixed(2)} to ${Math.max(...n.loss).toFixed(2)})`);
  }
  check(nets56[0].loss.some((v, i) => v !== nets56[1].loss[i]), "the two nets' losses differ (two nets, not one drawn twice)");
  await screenshot(page, "train-depth56");

  // Three members of the family side by side (ResNet-20, the pre-activation ResNet-20 of He et
  // al. 2016 and DenseNet-BC-40, the successor that concatenates), on the same data order:
  // three heatmaps, three falling losses.
  await page.click("#train-reset");
  await page.selectOption("#train-mode", "family");
  await page.selectOption("#train-depth", "20");
  await page.selectOption("#train-net1", "resnet");
  await page.selectOption("#train-net2", "preact");
  await page.selectOption("#train-net3", "densenet_bc40_12");
  await page.fill("#train-iterations", "16");
  await page.click("#train-start");
  await page.waitForFunction(() => {
    const nets = Object.values(window.__observed?.nets ?? {});
    return nets.length === 3 && nets.every((n) => n.info.stepCount >= 16) && document.querySelector("#view-train").dataset.state === "paused";
  }, null, { timeout: TIMEOUT, polling: 500 });
  const family = await page.evaluate(() => Object.values(window.__observed.nets).map((n) => ({ name: n.info.name, arch: n.info.arch, loss: n.loss.filter((v) => v != null) })));
  const captions = await page.evaluate(() => [...document.querySelectorAll("#heatmaps figcaption, .heatmap-caption")].map((c) => c.textContent));
  check(family.map((n) => n.arch).join() === "resnet20,preact_resnet20,densenet_bc40_12" && family.every((n) => n.name === n.arch), `family run: ${family.map((n) => n.arch).join(", ")} side by side, each named by its architecture`);
  check(captions.length === 3 && captions.some((c) => c.includes("pre-act ResNet-20")) && captions.some((c) => c.includes("DenseNet-BC-40 (k=12)")), `three heatmaps, captioned ${captions.map((c) => c.split(" — ")[0].trim()).join(" / ")}`);
  for (const n of family) {
    const [a, b] = [mean(n.loss.slice(0, 4)), mean(n.loss.slice(-4))];
    check(n.loss.length === 16 && n.loss.every(Number.isFinite) && b < a, `${n.arch}: loss fell over ${n.loss.length} steps, ${a.toFixed(3)} → ${b.toFixed(3)}`);
  }
  await screenshot(page, "train-family");

  // A run spec made natively fills the form (what `resnet train --spec` would run).
  const specFile = resolve(artifacts, "native-spec.json");
  const spec = execFileSync(binary, ["train", "--arch", "resnet32", "--plain", "--iterations", "300", "--lr", "0.07", "--momentum", "0.8", "--batch-size", "32", "--train-size", "512", "--seed", "5", "--print-spec"], { encoding: "utf8" });
  writeFileSync(specFile, spec);
  await page.click("#train-reset");
  await page.setInputFiles("#train-spec", specFile);
  await page.waitForFunction(() => document.querySelector("#train-note").textContent.startsWith("Run spec loaded"), null, { timeout: TIMEOUT });
  const form = await page.evaluate(() => Object.fromEntries(["train-mode", "train-depth", "train-lr", "train-momentum", "train-batch", "train-iterations", "train-seed", "train-size", "train-schedule"].map((id) => [id, document.getElementById(id).value])));
  const want = { "train-mode": "single-plain", "train-depth": "32", "train-lr": "0.07", "train-momentum": "0.8", "train-batch": "32", "train-iterations": "300", "train-seed": "5", "train-size": "512", "train-schedule": "paper" };
  check(JSON.stringify(form) === JSON.stringify(want), `a natively made run spec fills the form: ${JSON.stringify(form)}`);
  // Training, snapshots, exports and restores never talk to anything but the page's server.
  checkOwnOrigin(requests, url);
} catch (err) {
  failed = true;
  console.error(err);
  for (const p of browser.contexts().flatMap((c) => c.pages())) await screenshot(p, "train-failed");
} finally {
  await browser.close();
  server.close();
}
if (failed) process.exit(1);
console.log("\ntrain view end-to-end: all checks passed");
