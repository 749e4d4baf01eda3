// Shared helpers of the end-to-end tests: Debian's Chromium through playwright-core (no
// browser download), the page's static server, and small assertions.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(fileURLToPath(import.meta.url), "../../..");
export const artifacts = resolve(root, "test-artifacts");
mkdirSync(artifacts, { recursive: true });

const BASE_FLAGS = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  "--disable-gpu-sandbox",
];

/**
 * Headless Chromium; `webgpu: false` leaves WebGPU off (navigator.gpu yields no adapter);
 * `extraArgs` are further command-line flags.
 */
export async function launch({ webgpu = true, extraArgs = [] } = {}) {
  const args = [...BASE_FLAGS, ...(webgpu ? ["--enable-unsafe-webgpu", "--enable-features=Vulkan"] : ["--disable-webgpu"]), ...extraArgs];
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args,
  });
}

/** A page that echoes its console and fails on uncaught errors. */
export async function open(browser, url, name) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error" || process.env.VERBOSE) console.log(`  [${name} console.${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(e));
  // Every request the page and its workers make, to check that nothing leaves the origin.
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  // Name the URL behind Chromium's bare "Failed to load resource" (the page probes www/data/
  // for CIFAR-10 that `resnet data fetch` may have put there; a 404 there is expected).
  page.on("response", (r) => {
    if (r.status() >= 400) console.log(`  [${name}] ${r.status()} ${new URL(r.url()).pathname}`);
  });
  await page.goto(url);
  return { page, errors, requests };
}

/** Checks that every network request went to `url`'s origin (no image or model leaves it). */
export function checkOwnOrigin(requests, url) {
  const origin = new URL(url).origin;
  const network = requests.filter((r) => /^(https?|wss?):/.test(r));
  const foreign = network.filter((r) => new URL(r).origin !== origin);
  check(network.length > 0 && foreign.length === 0,
    `all ${network.length} requests went to the page's own origin${foreign.length ? `; not: ${foreign.join(", ")}` : ""}`);
}

export function check(condition, message) {
  if (!condition) throw new Error(`FAILED: ${message}`);
  console.log(`  ok - ${message}`);
}

export async function screenshot(page, name) {
  const path = resolve(artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`  screenshot: ${path}`);
}
