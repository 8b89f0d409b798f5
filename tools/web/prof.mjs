// Profile the page's frames while a DDIM-20 run goes: a Chrome trace, summarised by event name
// on the renderer's main thread and the GPU process.  node tools/web/prof.mjs URL OUT.json [flags]
import { openApp, ddim20 } from "./page.mjs";
import fs from "node:fs";
const [url, out, mode] = process.argv.slice(2);
const { browser, page, command, report } = await openApp(url, mode ?? "cpu");
await ddim20(command, page);
await browser.startTracing(page, { path: out, categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "gpu", "viz", "cc", "blink", "v8.execute"] });
await command("Run");
const t0 = Date.now();
while (Date.now() - t0 < 4000) await page.waitForTimeout(200);
await browser.stopTracing();
await browser.close();
// Time per (thread, event) in the trace: where a frame goes (the page's own JS and wasm,
// Chromium's commit and canvas read-back, the GPU process's WebGL).
const trace = JSON.parse(fs.readFileSync(out, "utf8"));
const events = trace.traceEvents ?? trace;
const threads = new Map();
for (const e of events) if (e.ph === "M" && e.name === "thread_name") threads.set(`${e.pid}/${e.tid}`, e.args.name);
const total = new Map();
for (const e of events) {
  if (e.ph !== "X") continue;
  const key = `${(threads.get(`${e.pid}/${e.tid}`) ?? "?").padEnd(22)} ${e.name}`;
  const [ms, n] = total.get(key) ?? [0, 0];
  total.set(key, [ms + (e.dur ?? 0) / 1000, n + 1]);
}
for (const [key, [ms, n]] of [...total].sort((a, b) => b[1][0] - a[1][0]).slice(0, 30)) {
  console.log(ms.toFixed(1).padStart(9), "ms", String(n).padStart(6), key);
}
