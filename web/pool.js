// The page's other cores for the CPU kernels: Web Workers that each run the direct conv kernel
// and the GroupNorm (+ SiLU) forward (crates/conv-worker, built to conv_worker.wasm) on a shared
// memory of their own. The page's
// main thread may not block, so rayon cannot share a conv there; instead difflab-kernels'
// `helpers` (src/app/web.rs binds these functions) copies a share of a batch into a worker's
// memory and wakes it (pool_start, pool_start_norm), computes its own images meanwhile, then
// takes back the tasks the worker has not begun (pool_claim), waits for the
// worker, spinning, and copies its outputs back (pool_finish). Shared memory needs a
// cross-origin isolated page (COOP/COEP: tools/web/serve.py sends them; on GitHub Pages,
// coi.js adds them); without it the page computes on its one thread.

// The worker: instantiate the kernel on the memory it is given, say where its control words
// are, then run a share each time the main thread bumps word 0, a task at a time (an image's
// block of `taskRows` output rows, difflab-kernels' `helpers::Task`): each task's index comes
// from word 13, which the main thread also takes from once it is done with its own images
// (pool_claim), so neither waits long while the other has tasks left.
//   ctrl[0] share number (main → worker)   ctrl[1] share done (worker → main)
//   ctrl[2..12] conv_images' arguments      ctrl[12] its result (1: ran)
//   ctrl[13] the share's next task          ctrl[14] output rows per task
//   ctrl[15] the kernel: 0 conv, 1 GroupNorm (its tasks are images; ε is the f64 at ctrl + 64)
const WORKER = `
onmessage = async ({ data: { module, memory } }) => {
  const { exports } = await WebAssembly.instantiate(module, { env: { memory } });
  const at = (exports.__heap_base.value + 63) & ~63;
  const ctrl = new Int32Array(memory.buffer, at, 16);
  postMessage({ at });
  // (the share's data lies from at + 128 up)
  let seen = 0;
  for (;;) {
    Atomics.wait(ctrl, 0, seen);
    seen = Atomics.load(ctrl, 0);
    let ran = 1;
    if (ctrl[15] === 0) {
      const [xc, xcLen, images, offs, k, w, wLen, rows, y, cols] = ctrl.slice(2, 12);
      const taskRows = ctrl[14];
      const perImage = Math.ceil(rows / taskRows);
      for (let t = Atomics.add(ctrl, 13, 1); t < images * perImage; t = Atomics.add(ctrl, 13, 1)) {
        const j = Math.floor(t / perImage);
        const row = (t % perImage) * taskRows;
        ran &= exports.conv_images(xc + 4 * j * xcLen, xcLen, 1, offs, k, w + 4 * row * k, wLen - row * k,
          Math.min(taskRows, rows - row), y + 4 * (j * rows + row) * cols, cols);
      }
    } else {
      const [x, images, channels, spatial, groups, gamma, beta, y, stats, silu] = ctrl.slice(2, 12);
      const epsilon = new Float64Array(memory.buffer, at + 64, 1)[0];
      const len = channels * spatial;
      for (let j = Atomics.add(ctrl, 13, 1); j < images; j = Atomics.add(ctrl, 13, 1)) {
        exports.norm_image(x + 4 * j * len, y + 4 * j * len, stats + 8 * j * groups, gamma, beta,
          channels, spatial, groups, epsilon, silu);
      }
    }
    Atomics.store(ctrl, 12, ran);
    Atomics.store(ctrl, 1, seen);
  }
};`;

const PAGE = 65536;
// What the workers did, for a script to read (`difflabPool` on the page; tools/web/ddim20.mjs):
// shares started, their images and tasks, the tasks the main thread took back, and its time
// waiting in pool_finish.
const stats = { shares: 0, images: 0, tasks: 0, claimed: 0, wait_ms: 0 };
globalThis.difflabPool = stats;
let main = null; // the page's own WebAssembly.Memory
const ready = []; // workers that answered, in that order: { memory, at, ctrl, seq, y, yBytes }

// Starts `count` workers on the kernel at `url` (relative to the page); each counts once it has
// answered. Failures go to the console and leave the page on its one thread. The promise is
// kept when every worker has answered or failed, or after 3 s.
export function pool_spawn(memory, count, url) {
  main = memory;
  let settle;
  const done = new Promise((resolve) => { settle = resolve; });
  let answered = 0;
  const answer = () => { if (++answered === count) settle(); };
  setTimeout(settle, 3000);
  const source = URL.createObjectURL(new Blob([WORKER], { type: "text/javascript" }));
  fetch(new URL(url, document.baseURI))
    .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`${url}: HTTP ${r.status}`))))
    .then((bytes) => WebAssembly.compile(bytes))
    .then((module) => {
      for (let i = 0; i < count; i++) {
        // 16 MiB to start with: the U-Net's largest shares (a piece of 4 digits) fit.
        const memory = new WebAssembly.Memory({ initial: 256, maximum: 32768, shared: true });
        const worker = new Worker(source);
        worker.onmessage = ({ data: { at } }) => {
          ready.push({ memory, at, ctrl: new Int32Array(memory.buffer, at, 16), seq: 0, tasks: 0, y: 0, yBytes: 0 });
          answer();
        };
        worker.onerror = (e) => {
          console.error("difflab: a kernel worker failed:", e.message);
          answer();
        };
        worker.postMessage({ module, memory });
      }
    })
    .catch((e) => {
      console.error("difflab: no kernel workers:", e);
      settle();
    });
  return done;
}

export function pool_ready() {
  return ready.length;
}

// Copies a share into worker i's memory (laid out above its control words) and wakes it.
// Room for `end` bytes in worker r's memory, with a quarter more (a run's first shares grow it
// layer by layer otherwise).
function reserve(r, end) {
  if (end > r.memory.buffer.byteLength) {
    r.memory.grow(Math.ceil((1.25 * end - r.memory.buffer.byteLength) / PAGE));
  }
}

// Bumps the share number, which wakes worker r.
function wake(r, tasks, images, y, yBytes) {
  r.tasks = tasks;
  r.y = y;
  r.yBytes = yBytes;
  stats.shares++;
  stats.images += images;
  stats.tasks += tasks;
  r.seq = (r.seq + 1) | 0;
  Atomics.store(r.ctrl, 13, 0);
  Atomics.store(r.ctrl, 0, r.seq);
  Atomics.notify(r.ctrl, 0);
}

const align = (n) => (n + 15) & ~15;

export function pool_start(i, xc, xcLen, images, offs, k, w, wLen, rows, cols, taskRows) {
  const r = ready[i];
  const oOffs = r.at + 128;
  const oW = align(oOffs + 4 * k);
  const oX = align(oW + 4 * wLen);
  const oY = align(oX + 4 * images * xcLen);
  reserve(r, oY + 4 * images * rows * cols);
  const from = new Uint8Array(main.buffer);
  const to = new Uint8Array(r.memory.buffer);
  to.set(from.subarray(offs, offs + 4 * k), oOffs);
  to.set(from.subarray(w, w + 4 * wLen), oW);
  to.set(from.subarray(xc, xc + 4 * images * xcLen), oX);
  r.ctrl.set([oX, xcLen, images, oOffs, k, oW, wLen, rows, oY, cols], 2);
  r.ctrl[14] = taskRows;
  r.ctrl[15] = 0;
  wake(r, images * Math.ceil(rows / taskRows), images, oY, 4 * images * rows * cols);
}

// A GroupNorm share: its images x, γ and β copied; the worker writes each image's y, then each
// image's statistics right after them (one copy back).
export function pool_start_norm(i, x, images, channels, spatial, groups, gamma, beta, epsilon, silu) {
  const r = ready[i];
  const len = channels * spatial;
  const oGamma = r.at + 128;
  const oBeta = align(oGamma + 4 * channels);
  const oX = align(oBeta + 4 * channels);
  const oY = align(oX + 4 * images * len);
  const oStats = oY + 4 * images * len;
  reserve(r, oStats + 8 * images * groups);
  const from = new Uint8Array(main.buffer);
  const to = new Uint8Array(r.memory.buffer);
  to.set(from.subarray(gamma, gamma + 4 * channels), oGamma);
  to.set(from.subarray(beta, beta + 4 * channels), oBeta);
  to.set(from.subarray(x, x + 4 * images * len), oX);
  r.ctrl.set([oX, images, channels, spatial, groups, oGamma, oBeta, oY, oStats, silu ? 1 : 0], 2);
  new Float64Array(r.memory.buffer, r.at + 64, 1)[0] = epsilon;
  r.ctrl[15] = 1;
  wake(r, images, images, oY, 4 * images * (len + 2 * groups));
}

// A task of worker i's share that it has not begun, for the main thread to compute: its
// index, or -1 once the worker has begun them all.
export function pool_claim(i) {
  const r = ready[i];
  const j = Atomics.add(r.ctrl, 13, 1);
  if (j >= r.tasks) return -1;
  stats.claimed++;
  return j;
}

// Waits for worker i's share (spinning: the main thread may not block) and copies its outputs
// to `y` in the page's memory.
export function pool_finish(i, y) {
  const r = ready[i];
  let spins = 0;
  const since = performance.now();
  while (Atomics.load(r.ctrl, 1) !== r.seq) {
    if (++spins % 1048576 === 0 && performance.now() - since > 20000) {
      throw new Error("a kernel worker has not answered in 20 s");
    }
  }
  stats.wait_ms += performance.now() - since;
  if (Atomics.load(r.ctrl, 12) !== 1) {
    throw new Error("the kernel worker has no SIMD");
  }
  new Uint8Array(main.buffer).set(new Uint8Array(r.memory.buffer, r.y, r.yBytes), y);
}
