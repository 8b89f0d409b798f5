// scratch: the longest gaps between animation frames during a DDIM-20 run, and what each thread did in them
import { openApp, ddim20 } from "./page.mjs";
import fs from "node:fs";
const [url, out] = process.argv.slice(2);
const { browser, page, command, report } = await openApp(url, "cpu");
await page.waitForTimeout(3000);
await ddim20(command, page);
if (!process.env.FIRST) { await command("Run"); await page.waitForTimeout(1500); } // a first run
await browser.startTracing(page, { path: out, categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "gpu", "viz", "cc", "blink", "v8.execute", "toplevel"] });
await command("Run");
await page.waitForTimeout(1500);
await browser.stopTracing();
await browser.close();
const trace = JSON.parse(fs.readFileSync(out, "utf8"));
const events = trace.traceEvents ?? trace;
const threads = new Map();
for (const e of events) if (e.ph === "M" && e.name === "thread_name") threads.set(`${e.pid}/${e.tid}`, e.args.name);
const raf = events.filter((e) => e.name === "FireAnimationFrame" && e.ph === "X").map((e) => e.ts).sort((a, b) => a - b);
const gaps = [];
for (let i = 1; i < raf.length; i++) gaps.push([raf[i] - raf[i - 1], raf[i - 1], raf[i]]);
gaps.sort((a, b) => b[0] - a[0]);
console.log("frames", raf.length, "gaps ms", gaps.slice(0, 6).map((g) => (g[0] / 1000).toFixed(0)).join(" "));
for (const [gap, a, b] of gaps.slice(0, 2)) {
  console.log(`--- gap ${(gap / 1000).toFixed(1)} ms`);
  const busy = new Map();
  for (const e of events) {
    if (e.ph !== "X" || e.ts + (e.dur ?? 0) < a || e.ts > b) continue;
    const t = threads.get(`${e.pid}/${e.tid}`) ?? "?";
    const ov = Math.min(b, e.ts + (e.dur ?? 0)) - Math.max(a, e.ts);
    const key = `${t.padEnd(24)} ${e.name}`;
    busy.set(key, (busy.get(key) ?? 0) + ov);
  }
  for (const [k, v] of [...busy].sort((x, y) => y[1] - x[1]).slice(0, 14)) console.log((v / 1000).toFixed(1).padStart(7), k);
}
