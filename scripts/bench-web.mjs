// Runs www/bench.html in headless Debian Chromium, on WebGPU and on the CPU fallback, and
// prints its JSON lines. A benchmark, not a test:
//   node scripts/bench-web.mjs [--no-train] [--device webgpu|cpu]
// (Needs pkg/ built by scripts/build-web.sh.)
import { start } from "./serve.mjs";
import { launch } from "../tests/e2e/browser.mjs";

const train = !process.argv.includes("--no-train");
const only = process.argv.indexOf("--device");
const devices = only > 0 ? [process.argv[only + 1]] : ["webgpu", "cpu"];
const server = await start({ port: 0 });
for (const device of devices) {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/bench.html?device=${device}&train=${train ? 1 : 0}`);
    await page.waitForSelector("body[data-done]", { timeout: 3_600_000 });
    console.log((await page.textContent("#out")).trim());
  } finally {
    await browser.close();
  }
}
server.close();
