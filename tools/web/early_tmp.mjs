import { openApp, ddim20 } from "./page.mjs";
const [url] = process.argv.slice(2);
const { browser, page, command, report } = await openApp(url);
const t0 = Date.now();
await ddim20(command, page);
await command("Run");
for (let i = 0; i < 40; i++) {
  await page.waitForTimeout(250);
  const r = await report();
  const m = await page.evaluate(() => globalThis.difflabModels);
  console.log(((Date.now() - t0) / 1000).toFixed(2), "done", r.sampling.done, "running", r.sampling.running, "models", m.workers, m.pieces, "busy", r.busy);
  if (!r.sampling.running && r.sampling.done === 20) break;
}
await browser.close();
