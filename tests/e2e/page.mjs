// The real page in headless Chromium: it loads the bundled model, classifies a dropped image
// on WebGPU and (with WebGPU off) on the CPU, shows the backend, refuses a non-image clearly,
// and classifies with a DenseNet file trained and exported by the native binary. The page is
// served cross-origin isolated, so its CPU runs the threaded build (pkg/threads/); a last run
// serves it without isolation, where the CPU runs the main build on one thread.
//   node tests/e2e/page.mjs [path/to/resnet]  (needs pkg/ built: scripts/build-web.sh; and the
//                                              native binary: cargo build)
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { start } from "../../scripts/serve.mjs";
import { check, checkOwnOrigin, launch, open, root, screenshot } from "./browser.mjs";

const server = await start({ port: 0, isolate: true });
const url = `http://127.0.0.1:${server.address().port}/`;
const TIMEOUT = 180_000;
const binary = process.argv[2] ?? resolve(process.env.CARGO_TARGET_DIR ?? resolve(root, "target"), "debug/resnet");
if (!existsSync(binary)) throw new Error(`the native binary ${binary} is missing: build it with cargo build`);

/**
 * A DenseNet the way an ML engineer hands one to the page: trained natively for a few steps on
 * Shapes, exported as a Burnpack file; and the top-5 the native CLI gives for `image` (10-crop).
 */
function nativeDenseNet(image) {
  const dir = mkdtempSync(join(tmpdir(), "resnet-densenet-"));
  const run = join(dir, "run");
  const file = join(dir, "densenet_bc16_4.bpk");
  execFileSync(binary, ["train", "--arch", "densenet_bc16_4", "--iterations", "60", "--batch-size", "32", "--train-size", "1024", "--test-size", "128", "--seed", "3", "--out", run], { stdio: "ignore" });
  execFileSync(binary, ["export", run, "--out", file], { stdio: "ignore" });
  const out = execFileSync(binary, ["classify", "--weights", file, "--views", "ten-crop", "--json", image], { encoding: "utf8" });
  return { file, top: JSON.parse(out).predictions };
}

/** A 24-bit bottom-up BMP of RGBA pixels. */
function bmp24(width, height, rgba) {
  const row = Math.ceil((width * 3) / 4) * 4;
  const out = Buffer.alloc(54 + row * height);
  out.write("BM", 0);
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(row * height, 34);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 4 * ((height - 1 - y) * width + x);
      const o = 54 + y * row + 3 * x;
      [out[o], out[o + 1], out[o + 2]] = [rgba[i + 2], rgba[i + 1], rgba[i]];
    }
  }
  return out;
}

/** Drops a file on the drop zone the way a user's drag and drop does. */
async function dropFile(page, bytes, name, type) {
  await page.evaluate(
    ({ data, name, type }) => {
      const file = new File([new Uint8Array(data)], name, { type });
      const transfer = new DataTransfer();
      transfer.items.add(file);
      const zone = document.getElementById("dropzone");
      for (const kind of ["dragenter", "dragover", "drop"]) {
        zone.dispatchEvent(new DragEvent(kind, { dataTransfer: transfer, bubbles: true, cancelable: true }));
      }
    },
    { data: [...bytes], name, type },
  );
}

async function predictions(page) {
  await page.waitForFunction(() => document.querySelectorAll("#predictions li").length === 5, null, { timeout: TIMEOUT });
  return page.$$eval("#predictions li", (items) =>
    items.map((li) => ({
      label: li.querySelector(".label").textContent,
      percent: parseFloat(li.querySelector(".value").textContent),
    })),
  );
}

async function classifyDropped(browser, name, expectBackend) {
  console.log(`\n${name}`);
  const { page, errors, requests } = await open(browser, url, name);
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  const badge = await page.textContent("#backend-badge");
  check(badge.startsWith(expectBackend === "webgpu" ? "WebGPU" : "CPU"), `backend badge says ${expectBackend}: "${badge}"`);
  if (expectBackend === "cpu") {
    // Isolated: the threaded build, one thread per logical core.
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    const want = cores === 1 ? "1 thread" : `${cores} threads`;
    check(badge.endsWith(`· ${want} (no WebGPU)`), `the CPU runs the threaded build on ${want}: "${badge}"`);
  }
  const info = await page.textContent("#model-info");
  check(info.includes("resnet20") && info.includes("Shapes"), `bundled model described: "${info}"`);

  // A test image of the Shapes dataset, dropped on the page.
  const samples = JSON.parse(readFileSync(resolve(root, "www/samples/index.json"), "utf8"));
  const sample = samples.find((s) => s.label === "ring") ?? samples[0];
  await dropFile(page, readFileSync(resolve(root, "www/samples", sample.file)), sample.file, "image/png");
  const top = await predictions(page);
  const sorted = top.every((p, i) => i === 0 || top[i - 1].percent >= p.percent);
  check(top.length === 5 && sorted, `top-5 rendered, sorted: ${top.map((p) => `${p.label} ${p.percent}%`).join(", ")}`);
  check(top[0].label === sample.label, `the bundled model recognises the dropped '${sample.label}' (got '${top[0].label}')`);
  const latency = await page.textContent("#latency");
  check(/\d+ ms on (WebGPU|CPU)/.test(latency), `latency shown: "${latency}"`);

  // The same image as a BMP, which the page decodes for the wasm package (left out of its
  // budget): the same top class.
  const png = readFileSync(resolve(root, "www/samples", sample.file));
  const { width, height, rgba } = await page.evaluate(async (bytes) => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: "image/png" }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, 0, 0);
    return { width: bitmap.width, height: bitmap.height, rgba: [...context.getImageData(0, 0, bitmap.width, bitmap.height).data] };
  }, [...png]);
  await page.evaluate(() => { document.querySelector("#latency").textContent = "stale"; });
  await dropFile(page, bmp24(width, height, rgba), sample.file.replace(/\.png$/, ".bmp"), "image/bmp");
  await page.waitForFunction(() => /\d+ ms on/.test(document.querySelector("#latency").textContent) || !document.querySelector("#error").hidden, null, { timeout: TIMEOUT });
  check(await page.isHidden("#error"), `the BMP is classified, not refused: "${await page.textContent("#error")}"`);
  const fromBmp = await predictions(page);
  check(fromBmp[0].label === sample.label, `a dropped BMP of the same image is recognised too (got '${fromBmp[0].label}')`);
  // And as a GIF and a WebP (tests/fixtures/ring.gif and ring.webp, the ring sample saved by
  // Pillow), which the page decodes too; the WebP is dropped without a type, so the page must
  // know it by its bytes.
  if (sample.label === "ring") {
    for (const [file, type] of [["ring.gif", "image/gif"], ["ring.webp", ""]]) {
      await page.evaluate(() => { document.querySelector("#latency").textContent = "stale"; });
      await dropFile(page, readFileSync(resolve(root, "tests/fixtures", file)), file, type);
      await page.waitForFunction(() => /\d+ ms on/.test(document.querySelector("#latency").textContent) || !document.querySelector("#error").hidden, null, { timeout: TIMEOUT });
      check(await page.isHidden("#error"), `the ${file} is classified, not refused: "${await page.textContent("#error")}"`);
      const fromFile = await predictions(page);
      check(fromFile[0].label === "ring", `a dropped ${file} of the ring is recognised too (got '${fromFile[0].label}')`);
    }
  }

  // 10-crop from the toggle.
  await page.selectOption("#tta-select", "ten-crop");
  await page.waitForFunction(() => document.querySelector("#latency").textContent.includes("10 views"), null, { timeout: TIMEOUT });
  await screenshot(page, `classify-${expectBackend}`);
  await tenCropIsTheMeanOfItsViews(page, sample, expectBackend);
  await classifyWithADenseNetFile(page, sample, expectBackend);

  // A file that is not an image gets a friendly message, not a crash.
  await dropFile(page, new TextEncoder().encode("this is not an image"), "notes.txt", "text/plain");
  await page.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const error = await page.textContent("#error");
  check(error.includes("not an image"), `non-image refused: "${error}"`);
  await screenshot(page, `classify-${expectBackend}-error`);
  check(errors.length === 0, `no uncaught page errors (${errors.map(String).join("; ")})`);
  checkOwnOrigin(requests, url); // the dropped image and the model stay in the page
  await page.close();
}

/**
 * The Weights menu's file input takes a DenseNet Burnpack file (its card names the
 * architecture): the page describes it and shows, for the same image and 10-crop, the top-5
 * the native CLI printed on the CPU; then the bundled model is restored.
 */
async function classifyWithADenseNetFile(page, sample, backend) {
  const densenet = nativeDenseNet(resolve(root, "www/samples", sample.file));
  await page.selectOption("#model-select", "file").catch(() => {}); // opens the file chooser
  await page.setInputFiles("#weights-input", densenet.file);
  await page.waitForFunction(() => document.querySelector("#model-info").textContent.startsWith("densenet_bc16_4"), null, { timeout: TIMEOUT });
  const info = await page.textContent("#model-info");
  check(info.includes("densenet_bc16_4") && info.includes("10 classes"), `the DenseNet file is described: "${info}"`);
  await page.evaluate(() => { document.querySelector("#latency").textContent = "stale"; });
  await dropFile(page, readFileSync(resolve(root, "www/samples", sample.file)), sample.file, "image/png");
  await page.waitForFunction(() => document.querySelector("#latency").textContent.includes("10 views"), null, { timeout: TIMEOUT });
  const top = await predictions(page);
  const labels = top.map((p) => p.label).join(", ");
  const want = densenet.top.map((p) => p.label).join(", ");
  // The page shows one decimal of a percent.
  const diff = Math.max(...top.map((p, i) => Math.abs(p.percent - 100 * densenet.top[i].probability)));
  check(labels === want && diff <= 0.06, `on ${backend}, the DenseNet's top-5 is the native CLI's: ${top.map((p) => `${p.label} ${p.percent}%`).join(", ")} (max |Δ| ${diff.toFixed(3)} points)`);
  await screenshot(page, `classify-densenet-${backend}`);
  await page.selectOption("#model-select", "default");
  await page.waitForFunction(() => document.querySelector("#model-info").textContent.startsWith("resnet20"), null, { timeout: TIMEOUT });
}

/**
 * Through the npm API in the page: the 10-crop probabilities equal the mean of the softmax of
 * the ten views cut here, independently, in JavaScript (pad 4 with the mean pixel, corners
 * and center, then mirrored), and every class's probability sums to 1.
 */
async function tenCropIsTheMeanOfItsViews(page, sample, backend) {
  const result = await page.evaluate(
    async ({ file, device }) => {
      const m = await import("/pkg/resnet.js");
      await m.default();
      const weights = new Uint8Array(await (await fetch("/models/resnet20-shapes.bpk")).arrayBuffer());
      const c = await m.Classifier.load(weights, { device });
      const png = new Uint8Array(await (await fetch(`/samples/${file}`)).arrayBuffer());
      const ten = await c.classify(png, { tta: "ten-crop", topK: c.numClasses });
      const bitmap = await createImageBitmap(new Blob([png]));
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0);
      const { data } = ctx.getImageData(0, 0, 32, 32);
      const { mean, std } = c.card.normalization;
      const pad = 4, side = 40, size = 32;
      const padded = new Float32Array(3 * side * side); // zero = the mean pixel once normalised
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          for (let ch = 0; ch < 3; ch++)
            padded[(ch * side + y + pad) * side + x + pad] = (data[(y * size + x) * 4 + ch] / 255 - mean[ch]) / std[ch];
      const origins = [[0, 0], [8, 0], [0, 8], [8, 8], [4, 4]];
      const views = new Float32Array(10 * 3 * size * size);
      let o = 0;
      for (const flip of [false, true])
        for (const [left, top] of origins)
          for (let ch = 0; ch < 3; ch++)
            for (let y = 0; y < size; y++)
              for (let x = 0; x < size; x++) views[o++] = padded[(ch * side + top + y) * side + left + (flip ? size - 1 - x : x)];
      const logits = await c.logits(views, [10, 3, size, size]);
      const k = c.numClasses;
      const meanProbability = new Array(k).fill(0);
      for (let v = 0; v < 10; v++) {
        const row = logits.slice(v * k, (v + 1) * k);
        const max = Math.max(...row);
        const exp = row.map((z) => Math.exp(z - max));
        const sum = exp.reduce((a, b) => a + b, 0);
        exp.forEach((e, i) => (meanProbability[i] += e / sum / 10));
      }
      const api = new Array(k).fill(0);
      for (const p of ten.predictions) api[p.index] = p.probability;
      return { views: ten.views, api, meanProbability };
    },
    { file: sample.file, device: backend },
  );
  const diff = Math.max(...result.api.map((p, i) => Math.abs(p - result.meanProbability[i])));
  const total = result.api.reduce((a, b) => a + b, 0);
  check(result.views === 10, `the API averaged 10 views (${result.views})`);
  check(diff < 1e-4, `10-crop probabilities = mean of the 10 views' softmax cut in JS (max |Δ| ${diff.toExponential(2)})`);
  check(Math.abs(total - 1) < 1e-3, `the 10-crop probabilities sum to 1 (${total.toFixed(5)})`);
}

/**
 * A browser whose WebAssembly lacks SIMD (the package needs it) is told so in words, not
 * with a CompileError: the worker's feature test is made to fail here.
 */
async function withoutSimd(browser) {
  console.log("\na browser without WebAssembly SIMD");
  const context = await browser.newContext();
  await context.route("**/js/worker.js", async (route) => {
    const response = await route.fetch();
    const body = `WebAssembly.validate = () => false;\n${await response.text()}`;
    await route.fulfill({ response, body });
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(url);
  await page.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const error = await page.textContent("#error");
  check(error.includes("cannot run the model") && error.includes("SIMD"), `no-SIMD browser told why: "${error}"`);
  const badge = await page.textContent("#backend-badge");
  check(badge === "not supported", `backend badge says so: "${badge}"`);
  await screenshot(page, "no-simd");
  check(errors.length === 0, `no uncaught page errors (${errors.map(String).join("; ")})`);
  await context.close();
}

/**
 * Served without cross-origin isolation (as a host that cannot send COOP/COEP does): the CPU
 * runs the main build on one thread, the badge says so and why, and the bundled model still
 * recognises the sample.
 */
async function singleThreaded(browser) {
  console.log("\nclassify with WebGPU off on a page that is not cross-origin isolated");
  const plain = await start({ port: 0, isolate: false });
  try {
    const { page, errors } = await open(browser, `http://127.0.0.1:${plain.address().port}/`, "not isolated");
    await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
    check(!(await page.evaluate(() => self.crossOriginIsolated)), "the page is not cross-origin isolated");
    const badge = await page.textContent("#backend-badge");
    check(badge === "CPU · WebAssembly · 1 thread (no WebGPU)", `the CPU runs the main build on one thread: "${badge}"`);
    const title = await page.getAttribute("#backend-badge", "title");
    check(title.includes("cross-origin-isolated"), `its tooltip says why there are no threads: "${title}"`);
    const samples = JSON.parse(readFileSync(resolve(root, "www/samples/index.json"), "utf8"));
    const sample = samples.find((s) => s.label === "ring") ?? samples[0];
    await dropFile(page, readFileSync(resolve(root, "www/samples", sample.file)), sample.file, "image/png");
    const top = await predictions(page);
    check(top[0].label === sample.label, `the bundled model recognises the dropped '${sample.label}' (got '${top[0].label}')`);
    await screenshot(page, "classify-cpu-one-thread");
    check(errors.length === 0, `no uncaught page errors (${errors.map(String).join("; ")})`);
    await page.close();
  } finally {
    plain.close();
  }
}

/**
 * Isolated, but the threaded build cannot be had (its module is missing here: a deployment
 * without pkg/threads/): the CPU runs the main build on one thread and the tooltip says why.
 */
async function threadedBuildMissing(browser) {
  console.log("\nclassify with WebGPU off when the threaded build does not start");
  const context = await browser.newContext();
  await context.route("**/pkg/threads/resnet.js", (route) => route.fulfill({ status: 404, body: "not found" }));
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(url);
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  check(await page.evaluate(() => self.crossOriginIsolated), "the page is cross-origin isolated");
  const badge = await page.textContent("#backend-badge");
  check(badge === "CPU · WebAssembly · 1 thread (no WebGPU)", `the CPU runs the main build on one thread: "${badge}"`);
  const title = await page.getAttribute("#backend-badge", "title");
  check(title.includes("the threaded build did not start"), `its tooltip says why: "${title.split("\n").pop()}"`);
  const samples = JSON.parse(readFileSync(resolve(root, "www/samples/index.json"), "utf8"));
  const sample = samples.find((s) => s.label === "ring") ?? samples[0];
  await dropFile(page, readFileSync(resolve(root, "www/samples", sample.file)), sample.file, "image/png");
  const top = await predictions(page);
  check(top[0].label === sample.label, `the bundled model recognises the dropped '${sample.label}' (got '${top[0].label}')`);
  check(errors.length === 0, `no uncaught page errors (${errors.map(String).join("; ")})`);
  await context.close();
}

let failed = false;
for (const [name, webgpu, backend] of [
  ["classify on WebGPU", true, "webgpu"],
  ["classify with WebGPU off (CPU fallback)", false, "cpu"],
  ["no SIMD", true, "no-simd"],
  ["CPU, not isolated", false, "cpu-one-thread"],
  ["CPU, threaded build missing", false, "cpu-threads-missing"],
]) {
  const browser = await launch({ webgpu });
  try {
    if (backend === "no-simd") await withoutSimd(browser);
    else if (backend === "cpu-threads-missing") await threadedBuildMissing(browser);
    else if (backend === "cpu-one-thread") await singleThreaded(browser);
    else await classifyDropped(browser, name, backend);
  } catch (err) {
    failed = true;
    console.error(err);
    for (const page of browser.contexts().flatMap((c) => c.pages())) await screenshot(page, `failed-${backend}`);
  } finally {
    await browser.close();
  }
}
server.close();
if (failed) process.exit(1);
console.log("\npage end-to-end: all checks passed");
