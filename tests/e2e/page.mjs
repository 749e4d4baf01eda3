// The real page in headless Chromium: it loads the bundled model, classifies a dropped image
// on WebGPU and (with WebGPU off) on the CPU, shows the backend, refuses a non-image clearly.
//   node tests/e2e/page.mjs        (needs pkg/ built: scripts/build-web.sh)
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { start } from "../../scripts/serve.mjs";
import { check, launch, open, root, screenshot } from "./browser.mjs";

const server = await start({ port: 0 });
const url = `http://127.0.0.1:${server.address().port}/`;
const TIMEOUT = 180_000;

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
  const { page, errors } = await open(browser, url, name);
  await page.waitForSelector("body[data-ready]", { timeout: TIMEOUT });
  const badge = await page.textContent("#backend-badge");
  check(badge.startsWith(expectBackend === "webgpu" ? "WebGPU" : "CPU"), `backend badge says ${expectBackend}: "${badge}"`);
  const info = await page.textContent("#model-info");
  check(info.includes("resnet20") && info.includes("Shapes"), `bundled model described: "${info}"`);

  // A test image of the Shapes dataset, dropped on the page.
  const samples = JSON.parse(readFileSync(resolve(root, "www/samples/index.json"), "utf8"));
  const sample = samples.find((s) => s.label === "ring") ?? samples[0];
  await dropFile(page, readFileSync(resolve(root, "www/samples", sample.file)), sample.file, "image/png");
  const top = await predictions(page);
  const total = top.reduce((sum, p) => sum + p.percent, 0);
  check(top.length === 5 && total <= 100.5 && top[0].percent >= top[4].percent, `top-5 rendered, sorted: ${top.map((p) => `${p.label} ${p.percent}%`).join(", ")}`);
  check(top[0].label === sample.label, `the bundled model recognises the dropped '${sample.label}' (got '${top[0].label}')`);
  const latency = await page.textContent("#latency");
  check(/\d+ ms on (WebGPU|CPU)/.test(latency), `latency shown: "${latency}"`);

  // 10-crop from the toggle.
  await page.selectOption("#tta-select", "ten-crop");
  await page.waitForFunction(() => document.querySelector("#latency").textContent.includes("10 views"), null, { timeout: TIMEOUT });
  check(true, "10-crop averages 10 views");
  await screenshot(page, `classify-${expectBackend}`);

  // A file that is not an image gets a friendly message, not a crash.
  await dropFile(page, new TextEncoder().encode("this is not an image"), "notes.txt", "text/plain");
  await page.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const error = await page.textContent("#error");
  check(error.includes("not an image"), `non-image refused: "${error}"`);
  await screenshot(page, `classify-${expectBackend}-error`);
  check(errors.length === 0, `no uncaught page errors (${errors.map(String).join("; ")})`);
  await page.close();
}

let failed = false;
for (const [name, webgpu, backend] of [
  ["classify on WebGPU", true, "webgpu"],
  ["classify with WebGPU off (CPU fallback)", false, "cpu"],
]) {
  const browser = await launch({ webgpu });
  try {
    await classifyDropped(browser, name, backend);
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
