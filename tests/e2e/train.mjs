// The Train view in headless Chromium on WebGPU: start ResNet-20 and plain-20 side by side,
// see both curves and a falling loss, pause (the step counter stops), export, reload and
// restore the saved session; then the exported weights evaluated natively by `resnet eval`
// give the test error the page reported.
//   node tests/e2e/train.mjs [path/to/resnet]      (needs pkg/ built and the native binary)
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { start } from "../../scripts/serve.mjs";
import { artifacts, check, launch, open, root, screenshot } from "./browser.mjs";

const binary = process.argv[2] ?? resolve(process.env.CARGO_TARGET_DIR ?? resolve(root, "target"), "debug/resnet");
const server = await start({ port: 0 });
const url = `http://127.0.0.1:${server.address().port}/`;
const TIMEOUT = 600_000;
const ITERATIONS = 10;
const BATCH = 4;

const browser = await launch({ webgpu: true });
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1100 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`  [page error] ${e}`));
  await page.goto(url);
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  await page.click("#tab-train");
  await page.fill("#train-batch", String(BATCH));
  await page.fill("#train-iterations", String(ITERATIONS));
  await page.selectOption("#train-depth", "20");
  await page.click("#train-start");

  const steps = (name) => page.evaluate((n) => window.__train.nets.get(n)?.info.stepCount ?? 0, name);
  await page.waitForFunction(() => {
    const nets = window.__train.nets;
    return nets.size === 2 && [...nets.values()].every((n) => n.info.stepCount >= 4);
  }, null, { timeout: TIMEOUT, polling: 500 });
  const curves = await page.evaluate(() => [...window.__train.nets.entries()].map(([name, n]) => ({ name, points: n.loss.filter((v) => v != null).length, loss: n.loss.filter((v) => v != null) })));
  for (const c of curves) check(c.points >= 4, `chart points for ${c.name}: ${c.points} (losses ${c.loss.map((l) => l.toFixed(2)).join(", ")})`);
  const heat = await page.evaluate(() => [...document.querySelectorAll("canvas.heatmap")].map((c) => c.height));
  check(heat.length === 2 && heat[0] === 20, `gradient heatmaps for both nets, 20 layers each (${heat})`);
  await screenshot(page, "train-running");

  // Pause: the counter stops.
  await page.click("#train-pause");
  await page.waitForFunction(() => document.querySelector("#view-train").dataset.state === "paused", null, { timeout: TIMEOUT });
  const paused = await steps("residual");
  await page.waitForTimeout(4000);
  check((await steps("residual")) === paused, `paused: the step counter stays at ${paused}`);

  // Finish the run, then the final evaluation has happened on the final weights.
  await page.click("#train-pause"); // resume
  await page.waitForFunction((n) => {
    const r = window.__train.nets.get("residual");
    return r.info.stepCount >= n && r.testError.filter((v) => v != null).length > 0 && document.querySelector("#view-train").dataset.state === "paused";
  }, ITERATIONS, { timeout: TIMEOUT, polling: 500 });
  const losses = await page.evaluate(() => window.__train.nets.get("residual").loss);
  const eval_ = await page.evaluate(() => window.__train.nets.get("residual").lastEval);
  check(losses.length >= ITERATIONS, `ResNet-20 ran ${losses.length} steps; loss ${losses[0].toFixed(3)} → ${losses.at(-1).toFixed(3)}`);
  await page.waitForSelector("#confusion table");
  await page.waitForSelector("#examples figure");
  await screenshot(page, "train-finished");

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
    check(Math.abs(native.top1_error - eval_.top1Error) < 0.004, `native top-1 error ${(native.top1_error * 100).toFixed(1)}% = page ${(eval_.top1Error * 100).toFixed(1)}%`);
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
