// DDIM-20 of 16 digits in the page, timed by the app, N runs in one page (the first warms V8's
// tiers): node tools/web/ddim20.mjs URL [runs]. The page's CPU path; `?threads=1` in URL keeps
// it on one thread.
import { openApp, ddim20 } from "./page.mjs";
const [url, runs = "3"] = process.argv.slice(2);
const { browser, page, command, report } = await openApp(url, "cpu");
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
await page.waitForTimeout(1000);
await ddim20(command, page);
const times = [];
let rep;
for (let i = 0; i < Number(runs); i++) {
  await command("Run");
  do { await page.waitForTimeout(50); rep = await report(); } while (!rep.sampling.running && rep.sampling.done !== 0);
  do { await page.waitForTimeout(50); rep = await report(); } while (rep.sampling.running || rep.sampling.done !== 20);
  times.push(rep.sampling.total_ms);
}
const pool = await page.evaluate(() => globalThis.difflabPool ?? null);
const models = await page.evaluate(() => globalThis.difflabModels ?? null);
console.log(JSON.stringify({ pool, models, isolated: await page.evaluate(() => window.crossOriginIsolated), cpu_helpers: rep.cpu_helpers, frames: rep.frames, ddim20_ms: times, errors }));
await browser.close();
