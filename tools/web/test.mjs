// Drives the browser build in Debian's headless Chromium (tools/web.sh test):
//   node tools/web/test.mjs URL [cpu|webgpu ...] [--shots DIR] [--json FILE] [--plain URL2]
// (URL2: the same site from a server that sends no cross-origin isolation headers)
// For each compute path: the page loads without console errors and says where it computes;
// the Forward tab draws (screenshot pixels not blank); a DDIM-20 run of 16 digits completes
// with the frame loop answering (frame-time percentiles) and its x_0 looks like digits; a
// lesson's "Show me" sets its panel up and decodes; a PNG dropped on the page as bytes opens.
// On the CPU path: the page's kernel and model workers are up and the model workers take pieces
// of the run, `?threads=1` (no workers) samples the same bits,
// and a host without the isolation headers (--plain) gets them from coi.js.
// Exits 1 with what failed.
import { chromium } from "playwright-core";
import { frameTimes } from "./page.mjs";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const args = process.argv.slice(2);
const url = args[0];
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
let modes = args.slice(1).filter((a, i, all) => !a.startsWith("--") && !(all[i - 1] ?? "").startsWith("--"));
if (modes.length === 0) modes = ["cpu", "webgpu"];
const shots = opt("--shots") ?? path.join(os.tmpdir(), "difflab-web-shots");
const jsonOut = opt("--json");
fs.mkdirSync(shots, { recursive: true });

const base = [
  "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
const flags = {
  // Headless Chromium without these has no WebGPU adapter: the page must fall back by itself.
  cpu: ["--headless=new", ...base],
  // SwiftShader's WebGPU adapter (a CPU emulation of a GPU).
  webgpu: ["--headless=new", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader",
    "--enable-unsafe-swiftshader", ...base],
};

const failures = [];
const results = {};
const check = (mode, ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} [${mode}] ${what}`);
  if (!ok) failures.push(`[${mode}] ${what}`);
};

async function report(page) {
  return JSON.parse((await page.evaluate(() => window.difflab?.difflab_report?.() ?? "")) || "null");
}

async function waitFor(page, what, pred, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await report(page);
    if (r && pred(r)) return r;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(r)?.slice(0, 400)}`);
    await page.waitForTimeout(100);
  }
}

const command = (page, c) => page.evaluate((c) => window.difflab.difflab_command(JSON.stringify(c)), c);

// Pixel statistics of a PNG screenshot, decoded by the page itself (a 2-D canvas).
async function pixelStats(page, png) {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = "data:image/png;base64," + b64;
    await img.decode();
    const c = new OffscreenCanvas(img.width, img.height);
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, img.width, img.height).data;
    const levels = new Set();
    let sum = 0, sum2 = 0;
    for (let i = 0; i < d.length; i += 4) {
      const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      sum += y; sum2 += y * y;
      levels.add(d[i] >> 3);
    }
    const n = d.length / 4;
    return { std: Math.sqrt(sum2 / n - (sum / n) ** 2), levels: levels.size };
  }, png.toString("base64"));
}

// Frame intervals of the page's own animation frames while `during` runs.
// Whether x_0 (B images of 28×28 in [−1, 1]) looks like digits: a dark background and some
// strokes in every image, as MNIST digits have (a thin "1" has about 4% of its pixels inked;
// noise, a blank or a grey wash fail).
function digitsCheck(x0, shape) {
  const [b, c, h, w] = shape;
  const n = c * h * w;
  const bad = [];
  for (let i = 0; i < b; i++) {
    const v = x0.slice(i * n, (i + 1) * n);
    const background = v.filter((x) => x < -0.5).length / n;
    const ink = v.filter((x) => x > 0.5).length / n;
    if (!(background > 0.55 && ink > 0.02 && ink < 0.45)) bad.push({ i, background, ink });
  }
  return bad;
}

async function runMode(mode) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: flags[mode],
    headless: false, // --headless=new is in the flags (Playwright's default is the old one)
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  const r = {};
  try {
    const t0 = Date.now();
    // With SwiftShader's adapter, `auto` stays on the CPU (the adapter is a CPU emulation, as
    // lavapipe on the desktop): the page is asked for WebGPU, as `--device wgpu` would.
    const pageUrl = new URL(url);
    if (mode === "webgpu") pageUrl.searchParams.set("device", "wgpu");
    await page.goto(pageUrl.href, { waitUntil: "load" });
    // The app is up when the page's status line is gone and the first report is in.
    await page.waitForFunction(() => {
      const s = document.getElementById("difflab_status");
      return s && s.style.display === "none" && window.difflab;
    }, null, { timeout: 60000 });
    let rep = await waitFor(page, "the first frame", (x) => x.tab && x.frames > 0, 30000);
    r.first_frame_s = (Date.now() - t0) / 1000;
    // What WebGPU adapter the browser offers, asked on a page of the same origin without the
    // app (the app's own page has already taken one).
    const probe = await browser.newPage();
    await probe.goto(new URL("no-such-page", url).href);
    r.adapter = await probe.evaluate(async () => {
      if (!navigator.gpu) return null;
      const a = await navigator.gpu.requestAdapter();
      return a ? (a.info?.vendor ?? "") + "/" + (a.info?.architecture ?? "") : null;
    });
    await probe.close();
    check(mode, true, `first frame after ${r.first_frame_s.toFixed(2)} s (WebGPU adapter: ${r.adapter ?? "none"})`);
    check(mode, rep.on_frames, `jobs on the frame loop; status line: "Computing on ${rep.compute}" (WebGPU: ${rep.webgpu})`);
    // Without an adapter the page falls back to the CPU by itself; with SwiftShader's it
    // computes on WebGPU (burn's wgpu backend, brought up with init_async).
    if (mode === "cpu") check(mode, /CPU/.test(rep.compute), "the status line says it computes on the CPU");
    else check(mode, /WebGPU/.test(rep.compute), "the status line says it computes on WebGPU");
    r.compute = rep.compute;
    // On the CPU path a cross-origin isolated page shares the convs with a Web Worker per other
    // core (web/pool.js; serve.py sends the headers).
    if (mode === "cpu") {
      const isolated = await page.evaluate(() => window.crossOriginIsolated);
      rep = await waitFor(page, "the kernel workers", (x) => x.cpu_helpers > 0 || !isolated, 20000);
      r.cpu_helpers = rep.cpu_helpers;
      check(mode, isolated && rep.cpu_helpers >= Math.min(7, os.cpus().length - 1), `cross-origin isolated; ${rep.cpu_helpers} Web Worker(s) share the CPU kernels (${os.cpus().length} cores)`);
      // And a model worker per other core (at most 3: web/models.js), each with the app's
      // module, warmed up on the shipped U-Net.
      rep = await waitFor(page, "the model workers", (x) => x.model_workers > 0, 30000).catch((e) => ({ model_workers: 0, error: String(e.message) }));
      r.model_workers = rep.model_workers;
      check(mode, rep.model_workers >= Math.min(3, os.cpus().length - 1), `${rep.model_workers} model worker(s) run pieces of the U-Net's calls`);
    }
    // How it draws: headless Chromium draws WebGL in software (SwiftShader), as a laptop whose
    // GPU the browser blocks does, and there a run repaints twice a second (as on lavapipe).
    r.webgl = rep.webgl;
    const software = /swiftshader|llvmpipe|basic render/i.test(rep.webgl);
    check(mode, rep.repaint_pace === (software ? "Software" : "Hardware"), `WebGL renderer "${rep.webgl}": a run repaints at the ${rep.repaint_pace} pace`);

    // Forward: the default tab draws x_0 and x_t.
    await command(page, { Tab: "Forward" });
    rep = await waitFor(page, "the forward panel's picture", (x) => x.forward_t !== null && !x.busy, 60000);
    await page.waitForTimeout(300);
    const fwd = await page.screenshot({ path: path.join(shots, `${mode}-forward.png`) });
    const stats = await pixelStats(page, fwd);
    check(mode, stats.std > 20 && stats.levels > 12, `Forward tab drew (luma std ${stats.std.toFixed(1)}, ${stats.levels} levels)`);

    // Every panel and every lesson opens and draws, with no banner.
    for (const tab of ["Schedule", "Compare", "Interpolate", "Playground", "Lessons"]) {
      await command(page, { Tab: tab });
      rep = await waitFor(page, `the ${tab} tab`, (x) => x.tab === tab, 10000);
      await page.waitForTimeout(300);
      const s = await pixelStats(page, await page.screenshot({ path: path.join(shots, `${mode}-tab-${tab}.png`) }));
      check(mode, s.std > 10 && !rep.banner, `${tab} drew (luma std ${s.std.toFixed(1)})${rep.banner ? ": " + rep.banner : ""}`);
    }
    let lessonsOk = 0;
    for (let n = 0; n < 16; n++) {
      await command(page, { Lesson: n });
      rep = await waitFor(page, `lesson ${n + 1}`, (x) => x.tab === "Lessons" && x.lesson === n, 10000);
      const s = await pixelStats(page, await page.screenshot());
      if (s.std > 10 && !rep.banner) lessonsOk++;
    }
    check(mode, lessonsOk === 16, `${lessonsOk} of 16 lessons opened and drew`);

    // Sampling: DDIM-20 of 16 digits with the shipped U-Net, on the page's CPU path.
    await command(page, { Tab: "Sampling" });
    await command(page, { Sampling: { sampler: "Ddim", steps: 20, seed: 0, batch: 16 } });
    const started = Date.now();
    const ft = await frameTimes(page, async () => {
      await command(page, "Run");
      await waitFor(page, "the run to start", (x) => x.sampling.running || x.sampling.x0.length, 10000);
      return waitFor(page, "the DDIM-20 run", (x) => !x.sampling.running && x.sampling.x0.length > 0, 600000);
    });
    rep = ft.out;
    r.ddim20_wall_s = (Date.now() - started) / 1000;
    r.ddim20_app_ms = rep.sampling.total_ms;
    r.frame_ms = { frames: ft.frames, p50: ft.p50, p99: ft.p99, max: ft.max };
    // The jobs' own compute in each of those frames (the rest of a frame is drawing it, which
    // headless Chromium does in software here).
    r.compute_per_frame_ms = { p50: rep.pump_ms[0], p99: rep.pump_ms[1], max: rep.pump_ms[2], frames: rep.pump_ms[3], sum: rep.pump_ms[4] };
    // (On WebGPU the page's part is queueing a step and waiting for its read: not counted.)
    check(mode, mode === "webgpu" || rep.pump_ms[1] <= 50, `compute per frame: p50 ${rep.pump_ms[0].toFixed(1)} ms, p99 ${rep.pump_ms[1].toFixed(1)} ms, max ${rep.pump_ms[2].toFixed(1)} ms over ${rep.pump_ms[3]} frames, ${(rep.pump_ms[4] / 1000).toFixed(2)} s in all`);
    check(mode, rep.sampling.done === 20 && rep.sampling.total === 20, `DDIM-20 ran 20 steps in ${r.ddim20_wall_s.toFixed(1)} s (app: ${(rep.sampling.total_ms / 1000).toFixed(1)} s)`);
    // The target is the CPU path's. SwiftShader's WebGPU computes in the GPU process that also
    // draws the page, so there the frames wait for the compute: reported, not judged.
    check(mode, mode === "webgpu" || ft.p99 <= 50, `frame time while it ran: p50 ${ft.p50.toFixed(1)} ms, p99 ${ft.p99.toFixed(1)} ms, max ${ft.max.toFixed(0)} ms over ${ft.frames} frames${mode === "webgpu" ? " (SwiftShader: reported, the target is the CPU path's)" : " (target p99 <= 50 ms)"}`);
    const bad = digitsCheck(rep.sampling.x0, rep.sampling.shape);
    check(mode, rep.sampling.shape?.join("x") === "16x1x28x28" && bad.length === 0, `16 samples look like digits${bad.length ? ": " + JSON.stringify(bad) : ""}`);
    r.x0_sum = rep.sampling.x0.reduce((a, b) => a + b, 0);
    x0s[mode] = rep.sampling.x0;
    if (mode === "cpu") {
      // The model worker(s) took pieces of the run's calls (web/models.js counts them).
      const models = await page.evaluate(() => globalThis.difflabModels);
      r.model_pieces = models;
      check(mode, models.pieces > 0 && models.failed === 0, `the run's 160 pieces of 2 digits: ${models.pieces} by the model worker(s) (${(models.worker_ms / Math.max(1, models.pieces)).toFixed(1)} ms each), the rest on the page's thread`);
    }
    await page.screenshot({ path: path.join(shots, `${mode}-sampling.png`) });
    // The same run again in the same page: what the first run spent on first-time work
    // (WebGPU: its shaders compiled and pipelines made; the CPU: V8's tiers) is the difference.
    await command(page, "Run");
    await waitFor(page, "the second run to start", (x) => x.sampling.running, 10000);
    rep = await waitFor(page, "the second DDIM-20 run", (x) => !x.sampling.running && x.sampling.done === 20, 600000);
    r.ddim20_second_app_ms = rep.sampling.total_ms;
    check(mode, true, `the same DDIM-20 run again: ${(rep.sampling.total_ms / 1000).toFixed(2)} s in the app`);
    // The same run on the page's one thread (`?threads=1`): the same digits bit for bit (each
    // image's sums are the same whichever thread computes it), and the time without workers.
    if (mode === "cpu") {
      const one = await browser.newPage({ viewport: { width: 1280, height: 860 } });
      one.on("pageerror", (e) => errors.push(String(e)));
      const oneUrl = new URL(url);
      oneUrl.searchParams.set("threads", "1");
      await one.goto(oneUrl.href, { waitUntil: "load" });
      await waitFor(one, "the one-thread page", (x) => x.tab && x.frames > 0, 60000);
      await command(one, { Tab: "Sampling" });
      await command(one, { Sampling: { sampler: "Ddim", steps: 20, seed: 0, batch: 16 } });
      await one.waitForTimeout(1500);
      const times = [];
      let oneRep;
      for (let run = 0; run < 2; run++) {
        await command(one, "Run");
        await waitFor(one, "the one-thread run to start", (x) => x.sampling.running, 10000);
        oneRep = await waitFor(one, "the one-thread DDIM-20 run", (x) => !x.sampling.running && x.sampling.done === 20, 600000);
        times.push(oneRep.sampling.total_ms);
      }
      r.ddim20_one_thread_app_ms = times;
      const same = oneRep.cpu_helpers === 0 && oneRep.model_workers === 0 && oneRep.sampling.x0.length === x0s.cpu.length &&
        oneRep.sampling.x0.every((v, i) => Object.is(v, x0s.cpu[i]));
      check(mode, same, `?threads=1: no workers, DDIM-20 in ${times.map((t) => (t / 1000).toFixed(2)).join(" / ")} s, the same 16 digits bit for bit as with ${r.cpu_helpers} kernel and ${r.model_workers} model worker(s)`);
      await one.close();
    }

    // A solver after DDIM in the page: DPM-Solver++ 2M, 10 steps, one frame per model call.
    await command(page, { Sampling: { sampler: { Solver: "DpmSolverPlusPlus" }, steps: 10, seed: 0, batch: 16 } });
    await command(page, "Run");
    await waitFor(page, "the solver run to start", (x) => x.sampling.running, 10000);
    rep = await waitFor(page, "the DPM-Solver++ run", (x) => !x.sampling.running && x.sampling.done === 10, 600000);
    const badSolver = digitsCheck(rep.sampling.x0, rep.sampling.shape);
    check(mode, rep.sampling.total === 10 && badSolver.length === 0, `DPM-Solver++ 2M ran 10 model calls and its 16 samples look like digits${badSolver.length ? ": " + JSON.stringify(badSolver) : ""}`);
    await page.screenshot({ path: path.join(shots, `${mode}-solver.png`) });

    // A lesson's "Show me": lesson 10's interpolation, set up and decoded.
    await command(page, { ShowMe: { lesson: 9, name: "interp" } });
    rep = await waitFor(page, "lesson 10's Show me", (x) => x.tab === "Interpolate" && !x.interpolating && x.interpolation_frames > 0, 600000);
    check(mode, rep.interpolation_frames > 1, `lesson 10's "Show me" opened Interpolate and decoded ${rep.interpolation_frames} frames`);
    await page.screenshot({ path: path.join(shots, `${mode}-interpolate.png`) });

    // The edit panel: lesson 14's SDEdit of a 7 (the pad starts from MNIST's first 7), five
    // rows (the slider's t₀ = 500, then the strip), each step a poll on the frame loop.
    await command(page, { ShowMe: { lesson: 13, name: "sdedit" } });
    await waitFor(page, "the edit to start", (x) => x.tab === "Edit" && x.edit.pad_inked && (x.edit.running || x.edit.sdedit_t0s.length), 30000);
    rep = await waitFor(page, "lesson 14's SDEdit", (x) => !x.edit.running && x.edit.sdedit_t0s.length === 5, 900000);
    const sdeditBad = digitsCheck(rep.edit.sdedit_first, [rep.edit.sdedit_first.length / 784, 1, 28, 28]);
    check(mode, rep.edit.sdedit_t0s.join(",") === "500,200,400,600,800" && sdeditBad.length === 0 && !rep.banner, `lesson 14's "Show me" ran SDEdit from t0 = ${rep.edit.sdedit_t0s.join(", ")} (${rep.edit.progress[1]} model calls); the t0 = 500 results look like digits${sdeditBad.length ? ": " + JSON.stringify(sdeditBad) : ""}`);
    await page.screenshot({ path: path.join(shots, `${mode}-edit.png`) });

    // A PNG dropped on the page (bytes, no path) opens as the Forward panel's image.
    await command(page, { Tab: "Forward" });
    await page.evaluate(async () => {
      const c = new OffscreenCanvas(64, 48);
      const g = c.getContext("2d");
      g.fillStyle = "#102040"; g.fillRect(0, 0, 64, 48);
      g.fillStyle = "#f0d020"; g.fillRect(16, 8, 32, 32);
      const blob = await c.convertToBlob({ type: "image/png" });
      const dt = new DataTransfer();
      dt.items.add(new File([blob], "dropped-square.png", { type: "image/png" }));
      const canvas = document.getElementById("difflab_canvas");
      for (const type of ["dragenter", "dragover", "drop"]) {
        canvas.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    });
    rep = await waitFor(page, "the dropped file", (x) => x.forward_source?.includes("dropped-square.png") || x.banner, 30000);
    check(mode, rep.forward_source?.includes("dropped-square.png") && !rep.banner, `a dropped PNG opened (${rep.forward_source ?? rep.banner})`);
    await waitFor(page, "the dropped image's x_t", (x) => !x.busy, 60000);
    await page.screenshot({ path: path.join(shots, `${mode}-dropped.png`) });

    // A device the address names wrongly: the app starts (as auto) and the page says why.
    if (mode === "cpu") {
      const bad = await browser.newPage();
      const badUrl = new URL(url);
      badUrl.searchParams.set("device", "tpu");
      await bad.goto(badUrl.href, { waitUntil: "load" });
      const badRep = await waitFor(bad, "the app with ?device=tpu", (x) => x.tab, 30000);
      const line = await bad.evaluate(() => document.getElementById("difflab_status")?.textContent ?? "");
      check(mode, /device=tpu is not auto, wgpu or cpu/.test(line) && /CPU/.test(badRep.compute), `?device=tpu: the app computes on ${badRep.compute}, the page says "${line}"`);
      await bad.close();
      // A host that sends no isolation headers (as GitHub Pages): web/coi.js, a service
      // worker, adds them and the page loads once more, isolated, with its workers.
      const plainUrl = opt("--plain");
      if (plainUrl) {
        const plain = await browser.newPage();
        plain.on("pageerror", (e) => errors.push(String(e)));
        await plain.goto(plainUrl, { waitUntil: "load" });
        await plain.waitForFunction(() => window.difflab && window.crossOriginIsolated, null, { timeout: 60000 }).catch(() => {});
        const plainRep = await waitFor(plain, "the app on a host without the headers", (x) => x.tab && x.cpu_helpers > 0 && x.model_workers > 0, 30000).catch((e) => ({ error: String(e.message) }));
        const isolated = await plain.evaluate(() => window.crossOriginIsolated);
        check(mode, isolated && plainRep.cpu_helpers > 0 && plainRep.model_workers > 0, `a host without COOP/COEP: coi.js isolated the page (${isolated}), ${plainRep.cpu_helpers ?? plainRep.error} kernel and ${plainRep.model_workers} model worker(s)`);
        await plain.close();
      }
    }

    check(mode, errors.length === 0, `no console errors${errors.length ? ": " + errors.slice(0, 3).join(" | ") : ""}`);
  } catch (e) {
    check(mode, false, String(e.message ?? e));
    await page.screenshot({ path: path.join(shots, `${mode}-failure.png`) }).catch(() => {});
    if (errors.length) console.log("console errors:", errors.slice(0, 5).join("\n"));
  } finally {
    results[mode] = r;
    await browser.close();
  }
}

const x0s = {};
for (const mode of modes) await runMode(mode);
// WebGPU and the CPU sample the same digits from the same noise (sums in another order: close,
// not bit for bit).
if (x0s.cpu && x0s.webgpu) {
  let worst = 0;
  for (let i = 0; i < x0s.cpu.length; i++) worst = Math.max(worst, Math.abs(x0s.cpu[i] - x0s.webgpu[i]));
  results.webgpu_vs_cpu_max_abs = worst;
  check("both", x0s.cpu.length === x0s.webgpu.length && worst < 0.05, `DDIM-20 on WebGPU and on the CPU: the same digits (max |Δ| ${worst.toExponential(2)})`);
}
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(results, null, 2));
console.log(JSON.stringify(results));
if (failures.length) {
  console.log(`${failures.length} failed:\n` + failures.join("\n"));
  process.exit(1);
}
console.log(`screenshots in ${shots}`);
