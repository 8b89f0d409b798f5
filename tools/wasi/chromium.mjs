// Runs a wasm32-wasip1 program (one cargo built: a benchmark, an example) in headless Chromium,
// under a small WASI shim, so it runs on the engine the page runs on (Node 20's older V8 ran the
// conv kernels at a third of Chromium's speed). Prints its output; exits with its exit code.
//   node tools/wasi/chromium.mjs PROGRAM.wasm [ARGS…]      (environment: WASI_ENV="K=V K2=V2")
// e.g. the conv kernels' simd128 throughput (docs/web.md):
//   CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128" cargo build --release \
//     -p difflab-kernels --example conv_bench --target wasm32-wasip1
//   node tools/wasi/chromium.mjs $CARGO_TARGET_DIR/wasm32-wasip1/release/examples/conv_bench.wasm
import http from "node:http";
import fs from "node:fs";
import { chromium } from "../web/node_modules/playwright-core/index.mjs";

const [wasm, ...args] = process.argv.slice(2);
if (!wasm || !fs.existsSync(wasm)) {
  console.error("usage: node tools/wasi/chromium.mjs PROGRAM.wasm [ARGS…]");
  process.exit(2);
}
const env = (process.env.WASI_ENV ?? "").split(" ").filter(Boolean);

// The page: instantiates the program with the WASI calls a Rust program's std makes (others
// answer ENOSYS), runs `_start`, and leaves its output in `window.done`.
const page = `<!doctype html><meta charset="utf-8"><script type="module">
const { args, env } = JSON.parse(decodeURIComponent(location.hash.slice(1)));
let mem, out = "";
const enc = new TextEncoder(), dec = new TextDecoder(), dv = () => new DataView(mem.buffer);
const put = (list, ptrs, buf) => {
  for (const [i, s] of list.entries()) {
    dv().setUint32(ptrs + 4 * i, buf, true);
    const b = enc.encode(s + "\\0");
    new Uint8Array(mem.buffer, buf, b.length).set(b);
    buf += b.length;
  }
  return 0;
};
const sizes = (list, n, len) => {
  dv().setUint32(n, list.length, true);
  dv().setUint32(len, list.reduce((t, s) => t + enc.encode(s).length + 1, 0), true);
  return 0;
};
class Exit { constructor(code) { this.code = code; } }
const calls = {
  args_get: (a, b) => put(args, a, b), args_sizes_get: (a, b) => sizes(args, a, b),
  environ_get: (a, b) => put(env, a, b), environ_sizes_get: (a, b) => sizes(env, a, b),
  clock_time_get: (id, precision, p) => {
    dv().setBigUint64(p, BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)), true);
    return 0;
  },
  clock_res_get: (id, p) => { dv().setBigUint64(p, 1000n, true); return 0; },
  fd_write: (fd, iovs, n, written) => {
    let total = 0;
    for (let i = 0; i < n; i++) {
      const p = dv().getUint32(iovs + 8 * i, true), len = dv().getUint32(iovs + 8 * i + 4, true);
      out += dec.decode(new Uint8Array(mem.buffer, p, len));
      total += len;
    }
    dv().setUint32(written, total, true);
    return 0;
  },
  proc_exit: (code) => { throw new Exit(code); },
  random_get: (p, len) => { crypto.getRandomValues(new Uint8Array(mem.buffer, p, len)); return 0; },
  sched_yield: () => 0,
};
const wasi = new Proxy(calls, { get: (t, k) => t[k] ?? (() => 52) });
const { instance } = await WebAssembly.instantiateStreaming(fetch("/program.wasm"), { wasi_snapshot_preview1: wasi });
mem = instance.exports.memory;
let code = 0;
try { instance.exports._start(); } catch (e) { code = e instanceof Exit ? e.code : (out += "\\n" + e, 1); }
window.done = { code, out };
</script>`;

const server = http.createServer((req, res) => {
  const program = req.url.startsWith("/program.wasm");
  res.writeHead(200, { "content-type": program ? "application/wasm" : "text/html" });
  if (program) fs.createReadStream(wasm).pipe(res);
  else res.end(page);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless=new"] });
try {
  const tab = await browser.newPage();
  const hash = encodeURIComponent(JSON.stringify({ args: [wasm, ...args], env }));
  await tab.goto(`http://127.0.0.1:${server.address().port}/#${hash}`);
  await tab.waitForFunction(() => window.done, null, { timeout: 0 });
  const { code, out } = await tab.evaluate(() => window.done);
  process.stdout.write(out);
  process.exitCode = code;
} finally {
  await browser.close();
  server.close();
}
