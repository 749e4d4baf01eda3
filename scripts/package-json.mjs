// Completes the package.json wasm-pack writes: an npm name, `main` next to `module`, an
// `exports` map, and the files list (so bundlers and plain ESM both resolve it).
import { readFileSync, writeFileSync } from "node:fs";

const path = process.argv[2];
const pkg = JSON.parse(readFileSync(path, "utf8"));
pkg.name = "resnet-burn";
pkg.type = "module";
pkg.main = pkg.module = "resnet.js";
pkg.types = "resnet.d.ts";
pkg.exports = {
  ".": { types: "./resnet.d.ts", import: "./resnet.js", default: "./resnet.js" },
  "./resnet_bg.wasm": "./resnet_bg.wasm",
  // The threaded CPU build (no WebGPU; needs a cross-origin-isolated page): the same API plus
  // `initThreadPool(n)`, awaited once after `init()`.
  "./threads": { types: "./threads/resnet.d.ts", import: "./threads/resnet.js", default: "./threads/resnet.js" },
  "./threads/resnet_bg.wasm": "./threads/resnet_bg.wasm",
  "./package.json": "./package.json",
};
pkg.files = ["resnet_bg.wasm", "resnet_bg.wasm.d.ts", "resnet.js", "resnet.d.ts", "README.md", "threads/"];
// The thread pool's worker script is a snippet that runs on load.
pkg.sideEffects = ["./snippets/*", "./threads/snippets/*"];
pkg.keywords = ["resnet", "webgpu", "wasm", "burn", "image-classification"];
writeFileSync(path, JSON.stringify(pkg, null, 2) + "\n");
