// A static server for the page: www/ at /, the built package at /pkg/. Node only, no deps.
// `start({ mounts })` serves more directories under URL prefixes (the browser benchmark's
// ONNX Runtime Web and ONNX files).
//   node scripts/serve.mjs [--port 8080] [--host 127.0.0.1] [--no-isolation]
// Pages are cross-origin isolated (COOP + COEP headers): only there may WebAssembly share
// memory between workers, which the package's threaded CPU build (pkg/threads/) needs.
// --no-isolation (`start({ isolate: false })`) serves them as a host that cannot send those
// headers does: the page then runs the single-threaded build.
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const host = arg("host", "127.0.0.1");
const port = Number(arg("port", process.env.PORT ?? 8080));

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8", ".json": "application/json", ".wasm": "application/wasm",
  ".png": "image/png", ".jpg": "image/jpeg", ".svg": "image/svg+xml", ".ts": "text/plain",
  ".bpk": "application/octet-stream", ".onnx": "application/octet-stream", ".bin": "application/octet-stream", ".ico": "image/x-icon",
};

const ISOLATION = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
};

export function start({ port: listenPort = port, host: listenHost = host, mounts = {}, isolate = !process.argv.includes("--no-isolation") } = {}) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    let path = decodeURIComponent(url.pathname);
    if (path.endsWith("/")) path += "index.html";
    const mount = Object.keys(mounts).find((prefix) => path.startsWith(prefix));
    const base = mount ? resolve(mounts[mount]) : path.startsWith("/pkg/") ? root : join(root, "www");
    const file = normalize(join(base, mount ? path.slice(mount.length) : path));
    if (!file.startsWith(base)) {
      res.writeHead(403).end();
      return;
    }
    try {
      if (!(await stat(file)).isFile()) throw new Error("not a file");
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-cache",
        ...(isolate ? ISOLATION : {}),
      });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
    }
  });
  return new Promise((ok) => server.listen(listenPort, listenHost, () => ok(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await start();
  const { address, port: bound } = server.address();
  console.log(`Serving the page at http://${address}:${bound}/  (Ctrl-C to stop)`);
}
