// Why the page drew its frames during a DDIM-20 run (egui's repaint causes, counted by the page).
// node tools/web/causes.mjs URL
import { chromium } from "playwright-core";
const [url] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless=new"], headless: false });
const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
await page.goto(url, { waitUntil: "load" });
await page.waitForFunction(() => window.difflab && document.getElementById("difflab_status")?.style.display === "none", null, { timeout: 60000 });
const command = (c) => page.evaluate((c) => window.difflab.difflab_command(JSON.stringify(c)), c);
const report = async () => JSON.parse(await page.evaluate(() => window.difflab.difflab_report()));
await command({ Tab: "Sampling" });
await command({ Sampling: { sampler: "Ddim", steps: 20, seed: 0, batch: 16 } });
await page.waitForTimeout(1500);
const before = (await report()).repaint_causes;
await page.waitForTimeout(200);
await command("Run");
await page.waitForTimeout(3000);
await report();
await page.waitForTimeout(100);
const r = await report();
console.log("before:", before);
console.log("after:", r.repaint_causes, "done", r.sampling.done);
await browser.close();
