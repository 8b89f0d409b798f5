// Runs a wasm32-wasip1 program (a test binary cargo built) under Node's WASI, so the CPU
// kernels' WebAssembly (simd128) path is tested against its reference on this machine:
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node tools/wasi/run.mjs" cargo test --target wasm32-wasip1 …
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: "preview1", args: [file, ...args], env: process.env, preopens: { "/": "/" }, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
