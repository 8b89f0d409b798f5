// What the profiling scripts share: headless Chromium on the site, the app up, its commands.
import { chromium } from "playwright-core";

export const flags = {
  cpu: ["--headless=new"],
  webgpu: ["--headless=new", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"],
};

// Opens `url` (mode "cpu" or "webgpu") and waits for the app; `command` and `report` speak to
// it through `window.difflab` (src/app/remote.rs).
export async function openApp(url, mode = "cpu") {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: flags[mode], headless: false });
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.difflab && document.getElementById("difflab_status")?.style.display === "none", null, { timeout: 60000 });
  const command = (c) => page.evaluate((c) => window.difflab.difflab_command(JSON.stringify(c)), c);
  const report = async () => JSON.parse((await page.evaluate(() => window.difflab.difflab_report())) || "null");
  return { browser, page, command, report };
}

// The browser test's run: DDIM-20 of 16 digits, seed 0, on the Sampling tab (not started).
export async function ddim20(command, page) {
  await command({ Tab: "Sampling" });
  await command({ Sampling: { sampler: "Ddim", steps: 20, seed: 0, batch: 16 } });
  await page.waitForTimeout(1500);
}

// The page's frame intervals (requestAnimationFrame) while `during` runs: its result, and the
// intervals' count, p50, p99 and max in ms.
export async function frameTimes(page, during) {
  await page.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (now) => {
      window.__frames.push(now - last);
      last = now;
      if (window.__recording) requestAnimationFrame(tick);
    };
    window.__recording = true;
    requestAnimationFrame(tick);
  });
  const out = await during();
  const ms = await page.evaluate(() => { window.__recording = false; return window.__frames; });
  ms.sort((a, b) => a - b);
  const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))];
  return { out, frames: ms.length, p50: q(0.5), p99: q(0.99), max: ms[ms.length - 1] };
}
