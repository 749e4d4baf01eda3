// Writes the npm package's package.json: version, description, license and repository from
// Cargo.toml (one source for both registries), an npm name, `main` next to `module`, an
// `exports` map, and the files list (so bundlers and plain ESM both resolve it).
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";

const path = process.argv[2];
const crate = JSON.parse(
  execFileSync("cargo", ["metadata", "--no-deps", "--format-version", "1"], { encoding: "utf8" }),
).packages.find((p) => p.name === "resnet");
const pkg = {};
pkg.name = "resnet-burn";
pkg.version = crate.version;
pkg.description = crate.description;
pkg.license = crate.license;
pkg.repository = { type: "git", url: crate.repository };
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
pkg.files = ["resnet_bg.wasm", "resnet_bg.wasm.d.ts", "resnet.js", "resnet.d.ts", "README.md", "LICENSE", "snippets/", "threads/"];
// The thread pool's worker script is a snippet that runs on load.
pkg.sideEffects = ["./snippets/*", "./threads/snippets/*"];
pkg.keywords = ["resnet", "webgpu", "wasm", "burn", "image-classification"];
writeFileSync(path, JSON.stringify(pkg, null, 2) + "\n");
