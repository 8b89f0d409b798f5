// The page's model workers: Web Workers that each instantiate the app's own WebAssembly module
// (the page's compiled module, posted to them) with the shipped U-Nets, and run whole pieces of
// a sampling step's batch through the model, while the page's main thread runs the others
// between its frames (src/app/jobs/stepped.rs, `PieceWorkers`; src/app/web_models.rs binds
// these functions). A step's call is offered to every worker (the batch copied, a few KB an
// image); each piece is claimed once, in a small shared array: the main thread from the first
// piece, the workers from the last, so neither waits long for the other. A worker posts each
// piece's output back; the main thread takes it between slices and never blocks. Unlike the
// kernel workers (pool.js), a worker keeps computing while the page draws. Shared memory (the
// claims) needs a cross-origin isolated page, as pool.js does.
//   claims[i]: 0 free, 1 the main thread's, 2 + k worker k's, -1 retired (run over or cancelled)

const WORKER = `
let glue = null;
let drawing = null;
onmessage = async ({ data }) => {
  if (data.glue !== undefined) {
    drawing = new Int32Array(data.drawing);
    try {
      glue = await import(data.glue);
      await glue.default({ module_or_path: data.module });
      glue.difflab_worker_warm_up(data.weights);
      postMessage({ ready: true });
    } catch (e) {
      postMessage({ failed: String(e) });
    }
    return;
  }
  const { offer, claims, x, shape, t, piece, weights, me } = data;
  const flags = new Int32Array(claims);
  const [b, c, h, w] = shape;
  const len = c * h * w;
  for (let i = flags.length - 1; i >= 0; i--) {
    // Not while the page draws a frame: in software (no GPU) that needs a core too.
    Atomics.wait(drawing, 0, 1, 100);
    if (Atomics.compareExchange(flags, i, 0, 2 + me) !== 0) continue;
    const start = i * piece;
    const end = Math.min(b, start + piece);
    try {
      const began = performance.now();
      const y = glue.difflab_worker_forward(weights, x.subarray(start * len, end * len), end - start, c, h, w, t);
      postMessage({ offer, i, y, ms: performance.now() - began }, [y.buffer]);
    } catch (e) {
      postMessage({ offer, i, failed: String(e) });
    }
  }
};`;

// What the workers did, for a script to read (`difflabModels` on the page; tools/web/test.mjs):
// workers ready, offers made, pieces the workers ran, and failures.
const stats = { workers: 0, offers: 0, pieces: 0, failed: 0, worker_ms: 0, offer_ms: 0 };
const offered = new Map(); // offer → when (performance.now())
globalThis.difflabModels = stats;
const ready = []; // workers that answered, in that order
const live = new Map(); // offer → its claims (Int32Array on a SharedArrayBuffer)
const results = new Map(); // offer → Map(piece → Float32Array, or the worker's error text)
let offers = 0;
let arrival = null; // keeps models_next's promise
// 1 while the page draws a frame (models_drawing): the workers start no piece then. Made by
// models_spawn: SharedArrayBuffer exists only in a cross-origin isolated page, and this module
// loads in every page.
let drawing = null;

// Starts `count` workers on the page's compiled `module`, whose glue is at `glue` (relative to
// the page); each warms up on the U-Net `weights` and counts once it has answered. Failures go
// to the console and leave the page without them. The promise is kept when every worker has
// answered or failed, or after 15 s.
export function models_spawn(module, count, glue, weights) {
  let settle;
  const done = new Promise((resolve) => { settle = resolve; });
  let answered = 0;
  const answer = () => { if (++answered === count) settle(); };
  setTimeout(settle, 15000); // a worker that never answers leaves the page without it
  drawing = new Int32Array(new SharedArrayBuffer(4));
  const source = URL.createObjectURL(new Blob([WORKER], { type: "text/javascript" }));
  const url = new URL(glue, document.baseURI).href;
  for (let k = 0; k < count; k++) {
    const worker = new Worker(source, { type: "module" });
    let up = false;
    worker.onmessage = ({ data }) => {
      if (!up) {
        up = true;
        if (data.ready) {
          worker.me = ready.length;
          ready.push(worker);
          stats.workers = ready.length;
        } else {
          console.error("difflab: a model worker did not start:", data.failed);
        }
        answer();
        return;
      }
      const pieces = results.get(data.offer);
      if (pieces === undefined) return; // retired
      if (data.failed !== undefined) stats.failed++;
      else {
        stats.pieces++;
        stats.worker_ms += data.ms;
      }
      pieces.set(data.i, data.failed ?? data.y);
      if (arrival !== null) {
        arrival();
        arrival = null;
      }
    };
    worker.onerror = (e) => {
      console.error("difflab: a model worker failed:", e.message);
      // Its claimed pieces will not come back: say so, so that the run ends with an error.
      if (worker.me !== undefined) {
        for (const [offer, claims] of live) {
          claims.forEach((c, i) => {
            if (c === 2 + worker.me) results.get(offer).set(i, `a model worker failed: ${e.message}`);
          });
        }
      }
      if (!up) { up = true; answer(); }
    };
    worker.postMessage({ glue: url, module, weights, drawing: drawing.buffer });
  }
  return done;
}

export function models_ready() {
  return ready.length;
}

// Whether the page is drawing a frame (from the frame that drew to the next slice of work).
export function models_drawing(on) {
  if (drawing === null) return;
  Atomics.store(drawing, 0, on ? 1 : 0);
  if (!on) Atomics.notify(drawing, 0);
}

// A promise kept when the next piece comes back from a worker: the page's job loop, waiting
// for the workers, goes on at once rather than at its next look (a timer's 4 ms at least).
export function models_next() {
  return new Promise((resolve) => { arrival = resolve; });
}

// Offers a call's batch `x` (a view of the page's memory: copied) of `shape` at timestep `t`,
// in pieces of `piece` images, to every worker; its number.
export function models_offer(weights, x, shape, t, piece) {
  const offer = ++offers;
  const claims = new Int32Array(new SharedArrayBuffer(4 * Math.ceil(shape[0] / piece)));
  live.set(offer, claims);
  results.set(offer, new Map());
  const copy = x.slice();
  const dims = Array.from(shape);
  for (const worker of ready) {
    worker.postMessage({ offer, claims: claims.buffer, x: copy, shape: dims, t, piece, weights, me: worker.me });
  }
  stats.offers++;
  offered.set(offer, performance.now());
  return offer;
}

// Whether the main thread gets piece `i` of `offer`.
export function models_claim(offer, i) {
  const claims = live.get(offer);
  return claims !== undefined && Atomics.compareExchange(claims, i, 0, 1) === 0;
}

// A worker's output for piece `i` of `offer` once it is back (a Float32Array, or the worker's
// error text), else undefined.
export function models_take(offer, i) {
  const pieces = results.get(offer);
  const y = pieces?.get(i);
  if (y !== undefined) pieces.delete(i);
  return y;
}

// The offer is over: its unclaimed pieces go to nobody, and late outputs are dropped.
export function models_retire(offer) {
  const claims = live.get(offer);
  if (claims !== undefined) {
    for (let i = 0; i < claims.length; i++) Atomics.compareExchange(claims, i, 0, -1);
  }
  live.delete(offer);
  results.delete(offer);
  if (offered.has(offer)) stats.offer_ms += performance.now() - offered.get(offer);
  offered.delete(offer);
}
