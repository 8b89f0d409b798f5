// Profile the page's frames while a DDIM-20 run goes: a Chrome trace, summarised by event name
// on the renderer's main thread and the GPU process.  node tools/web/prof.mjs URL OUT.json [flags]
import { chromium } from "playwright-core";
import fs from "node:fs";
const [url, out, mode] = process.argv.slice(2);
const flags = { cpu: ["--headless=new"], webgpu: ["--headless=new", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"] }[mode ?? "cpu"];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: flags, headless: false });
const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
await page.goto(url, { waitUntil: "load" });
await page.waitForFunction(() => window.difflab && document.getElementById("difflab_status")?.style.display === "none", null, { timeout: 60000 });
const command = (c) => page.evaluate((c) => window.difflab.difflab_command(JSON.stringify(c)), c);
const report = async () => JSON.parse(await page.evaluate(() => window.difflab.difflab_report()));
await command({ Tab: "Sampling" });
await command({ Sampling: { sampler: "Ddim", steps: 20, seed: 0, batch: 16 } });
await page.waitForTimeout(1000);
await browser.startTracing(page, { path: out, categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "gpu", "viz", "cc", "blink", "v8.execute"] });
await command("Run");
const t0 = Date.now();
while (Date.now() - t0 < 4000) await page.waitForTimeout(200);
await browser.stopTracing();
const r = await report();
console.log("done", r.sampling.done, "of", r.sampling.total);
await browser.close();
