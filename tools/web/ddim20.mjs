// DDIM-20 of 16 digits in the page, timed by the app, N runs in one page (the first warms V8's
// tiers): node tools/web/ddim20.mjs URL [runs]. The page's CPU path; `?threads=1` in URL keeps
// it on one thread, `?models=0` leaves the model workers out. Prints each run's time, its frame
// intervals (p50/p99/max ms) and the pieces the model workers ran; WAIT_MS after the page is up
// (1000) before the first run.
import { openApp, ddim20, frameTimes } from "./page.mjs";
const [url, runs = "3"] = process.argv.slice(2);
const { browser, page, command, report } = await openApp(url, "cpu");
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
await page.waitForTimeout(Number(process.env.WAIT_MS ?? 1000)); // after the page is up (WAIT_MS)
await ddim20(command, page);
const times = [];
const perRun = []; // each run's pieces by the model workers, and their ms each
const frames = []; // each run's frame intervals (requestAnimationFrame): p50 / p99 / max ms
let rep;
for (let i = 0; i < Number(runs); i++) {
  const before = await page.evaluate(() => ({ ...(globalThis.difflabModels ?? {}) }));
  const ft = await frameTimes(page, async () => {
    await command("Run");
    do { await page.waitForTimeout(50); rep = await report(); } while (!rep.sampling.running && rep.sampling.done !== 0);
    do { await page.waitForTimeout(50); rep = await report(); } while (rep.sampling.running || rep.sampling.done !== 20);
  });
  times.push(rep.sampling.total_ms);
  const after = await page.evaluate(() => ({ ...(globalThis.difflabModels ?? {}) }));
  if (after.pieces !== undefined) {
    const n = after.pieces - before.pieces;
    perRun.push(`${n} pieces, ${((after.worker_ms - before.worker_ms) / Math.max(1, n)).toFixed(1)} ms each`);
  }
  frames.push(`${Math.round(ft.p50)}/${Math.round(ft.p99)}/${Math.round(ft.max)}`);
}
const pool = await page.evaluate(() => globalThis.difflabPool ?? null);
const models = await page.evaluate(() => globalThis.difflabModels ?? null);
console.log(JSON.stringify({ pool, models, isolated: await page.evaluate(() => window.crossOriginIsolated), cpu_helpers: rep.cpu_helpers, frames: rep.frames, frame_ms: frames, worker_pieces: perRun, ddim20_ms: times, errors }));
await browser.close();
