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
  "./package.json": "./package.json",
};
pkg.files = ["resnet_bg.wasm", "resnet_bg.wasm.d.ts", "resnet.js", "resnet.d.ts", "README.md"];
pkg.sideEffects = ["./snippets/*"];
pkg.keywords = ["resnet", "webgpu", "wasm", "burn", "image-classification"];
writeFileSync(path, JSON.stringify(pkg, null, 2) + "\n");
