// The npm package from a bundler: a Vite app imports `resnet-burn` (pkg/), builds, and runs
// in headless Chromium, where it loads a model and classifies on WebGPU.
//   node tests/e2e/bundler.mjs        (needs pkg/ built: scripts/build-web.sh)
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { build } from "vite";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { artifacts, check, launch, open, root, screenshot } from "./browser.mjs";

const app = resolve(artifacts, "vite-app");
rmSync(app, { recursive: true, force: true });
mkdirSync(resolve(app, "node_modules"), { recursive: true });
mkdirSync(resolve(app, "public"), { recursive: true });
// Installed as a dependency the way `npm install ../pkg` lays it out.
cpSync(resolve(root, "pkg"), resolve(app, "node_modules/resnet-burn"), { recursive: true });
cpSync(resolve(root, "www/models/resnet20-shapes.bpk"), resolve(app, "public/model.bpk"));
cpSync(resolve(root, "www/samples/00-disk.png"), resolve(app, "public/sample.png"));
writeFileSync(resolve(app, "package.json"), JSON.stringify({ name: "vite-consumer", private: true, type: "module", dependencies: { "resnet-burn": "file:../../pkg" } }));
writeFileSync(resolve(app, "index.html"), `<!doctype html><title>consumer</title><pre id="out">running</pre><script type="module" src="/main.js"></script>`);
writeFileSync(
  resolve(app, "main.js"),
  `import init, { Classifier, backendInfo } from "resnet-burn";
const out = document.getElementById("out");
try {
  await init();
  const backend = await backendInfo();
  const weights = new Uint8Array(await (await fetch("/model.bpk")).arrayBuffer());
  const classifier = await Classifier.load(weights);
  const image = new Uint8Array(await (await fetch("/sample.png")).arrayBuffer());
  const result = await classifier.classify(image, { topK: 3 });
  out.textContent = JSON.stringify({ backend, arch: classifier.arch, result });
} catch (err) {
  out.textContent = "ERROR " + err.kind + ": " + err.message;
}
document.body.dataset.done = "1";
`,
);

console.log("vite build of an app importing resnet-burn");
await build({ root: app, logLevel: "warn", build: { outDir: "dist", target: "es2022" } });
const assets = readdirSync(resolve(app, "dist/assets"));
check(assets.some((f) => f.endsWith(".wasm")), `the bundle emits the wasm module (${assets.join(", ")})`);
check(existsSync(resolve(app, "dist/index.html")), "the bundle has its page");

const server = createServer(async (req, res) => {
  const path = resolve(app, "dist", "." + (req.url === "/" ? "/index.html" : req.url));
  try {
    const body = await readFile(path);
    const type = path.endsWith(".wasm") ? "application/wasm" : path.endsWith(".js") ? "text/javascript" : path.endsWith(".html") ? "text/html" : "application/octet-stream";
    res.writeHead(200, { "content-type": type }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const browser = await launch({ webgpu: true });
try {
  const { page } = await open(browser, `http://127.0.0.1:${server.address().port}/`, "vite app");
  await page.waitForSelector("body[data-done]", { timeout: 180_000 });
  const text = await page.textContent("#out");
  check(!text.startsWith("ERROR"), `the bundled app ran: ${text.slice(0, 160)}`);
  const { backend, arch, result } = JSON.parse(text);
  check(backend.backend === "webgpu", `the bundled app runs on WebGPU (${backend.adapter})`);
  check(arch === "resnet20" && result.predictions.length === 3, "it classified with the bundled model");
  // The sample is a Shapes test image of a disk; the bundled model has 0.77% test error.
  check(result.predictions[0].label === "disk", `it names the sample's class: ${result.predictions.map((p) => `${p.label} ${(p.probability * 100).toFixed(1)}%`).join(", ")}`);
  await screenshot(page, "vite-consumer");
} finally {
  await browser.close();
  server.close();
}
console.log("\nbundler consumer: all checks passed");
