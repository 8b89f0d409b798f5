// A CPU profile of the page (V8's sampler) while a DDIM-20 run goes, summarised by self time of
// each function and by the top-level phase.  node tools/web/cpuprof.mjs URL [cpu|webgpu]
import { openApp, ddim20 } from "./page.mjs";
const [url, mode] = process.argv.slice(2);
const { browser, page, command, report } = await openApp(url, mode ?? "cpu");
await ddim20(command, page);
const cdp = await page.context().newCDPSession(page);
await cdp.send("Profiler.enable");
await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
await cdp.send("Profiler.start");
await command("Run");
await page.waitForTimeout(4000);
const { profile } = await cdp.send("Profiler.stop");
await browser.close();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map(), incl = new Map();
const dt = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const ms = (dt[i + 1] ?? dt[i]) / 1000;
  let id = profile.samples[i];
  const n = byId.get(id).callFrame.functionName || "(anon)";
  self.set(n, (self.get(n) ?? 0) + ms);
  const seen = new Set();
  while (id !== undefined) {
    const f = byId.get(id).callFrame.functionName || "(anon)";
    if (!seen.has(f)) { incl.set(f, (incl.get(f) ?? 0) + ms); seen.add(f); }
    id = parent.get(id);
  }
}
const top = (m, k) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k);
console.log("== inclusive");
for (const [n, v] of top(incl, 60)) console.log(v.toFixed(0).padStart(7), n.slice(0, 150));
console.log("== self");
for (const [n, v] of top(self, 30)) console.log(v.toFixed(0).padStart(7), n.slice(0, 150));
