#!/usr/bin/env bash
# The browser build of difflab: a static site (index.html, difflab.js, difflab_bg.wasm) that any
# static host serves.
#
#   tools/web.sh check   type-check the app for wasm32 (CI runs this)
#   tools/web.sh build   build the site; its folder is the last line printed
#   tools/web.sh serve   build, then serve it on http://127.0.0.1:8765 (PORT=…)
#   tools/web.sh test    build, serve on 127.0.0.1 and drive it in headless Chromium
#   tools/web.sh kernels the CPU kernels' WebAssembly (simd128) path against its reference:
#                        their test built for wasm32-wasip1 and run under Node's WASI
#
# With rustup: `rustup target add wasm32-unknown-unknown` (this script runs it) and
# wasm-bindgen-cli at the lock file's version (installed under ../web-tools when missing).
# Exit 3: no wasm32 toolchain could be had. WEB_DEBIAN=1 uses Debian's rustc-web, cargo-web,
# rust-web-src and lld instead (Rust 1.85, std built from source, newer features turned on by
# tools/web/rustc-wrapper.sh): today it stops at egui 0.37's emath, which calls a standard
# library function 1.85 does not have (docs/web.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
parent=$(cd .. && pwd)
target=wasm32-unknown-unknown
export CARGO_TARGET_DIR="${WEB_TARGET_DIR:-$parent/target-web}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
site="${WEB_SITE_DIR:-$CARGO_TARGET_DIR/site}"
tools="${WEB_TOOLS_DIR:-$parent/web-tools}"
port="${PORT:-8765}"

say() { printf 'web.sh: %s\n' "$*" >&2; }

# How to run cargo for wasm32: rustup's toolchain when it has the target, else Debian's
# rustc-web with the standard library built from source. The target goes right after the
# subcommand (before a `--` of `cargo rustc`).
cargo_wasm() {
    if [ "${WEB_DEBIAN:-0}" != 1 ] && command -v rustup >/dev/null 2>&1; then
        if rustup target list --installed 2>/dev/null | grep -qx "$target" ||
            rustup target add "$target" >&2; then
            cargo "$1" --target "$target" "${@:2}"
            return
        fi
        say "rustup cannot fetch the $target standard library here (try WEB_DEBIAN=1: see docs/web.md)"
        exit 3
    fi
    if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || ! command -v wasm-ld >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "installing Debian's rustc-web, cargo-web, rust-web-src and lld"
            apt-get install -y -qq rustc-web cargo-web rust-web-src lld >/dev/null
        else
            say "no wasm32 toolchain: run 'rustup target add $target' (or install Debian's rustc-web cargo-web rust-web-src lld)"
            exit 3
        fi
    fi
    # Debian's compiler (1.85) is older than the project's rust-version; with RUSTC_BOOTSTRAP it
    # builds std for wasm32 from source, and the wrapper turns on let chains (stable in 1.88).
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTC_WRAPPER="$root/tools/web/rustc-wrapper.sh" \
        /usr/bin/cargo "$1" --target "$target" -Zbuild-std=std,panic_abort --ignore-rust-version "${@:2}"
}

wasm_bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock
}

# wasm-bindgen-cli at exactly the lock file's wasm-bindgen version.
wasm_bindgen() {
    local want
    want=$(wasm_bindgen_version)
    for wb in "$(command -v wasm-bindgen || true)" "$tools/bin/wasm-bindgen"; do
        if [ -n "$wb" ] && [ -x "$wb" ] && [ "$("$wb" --version | awk '{print $2}')" = "$want" ]; then
            "$wb" "$@"
            return
        fi
    done
    say "installing wasm-bindgen-cli $want under $tools"
    cargo install wasm-bindgen-cli --version "=$want" --locked --root "$tools" >&2 ||
        cargo install wasm-bindgen-cli --version "=$want" --root "$tools" >&2
    "$tools/bin/wasm-bindgen" "$@"
}

check() {
    cargo_wasm check --locked --lib --bin difflab
}

build() {
    cargo_wasm build --locked --profile "${WEB_PROFILE:-web}" --bin difflab >&2
    local dir=${WEB_PROFILE:-web}
    [ "$dir" = dev ] && dir=debug
    local wasm="$CARGO_TARGET_DIR/$target/$dir/difflab.wasm"
    rm -rf "$site.new"
    mkdir -p "$site.new"
    # No name section: 10 MB of function names, only for a debugger (WEB_PROFILE=dev keeps it).
    local keep=()
    [ "${WEB_PROFILE:-web}" = dev ] || keep=(--remove-name-section --remove-producers-section)
    wasm_bindgen --target web --no-typescript "${keep[@]}" --out-dir "$site.new" --out-name difflab "$wasm" >&2
    conv_worker "$site.new/conv_worker.wasm"
    cp web/index.html web/coi.js "$site.new/"
    rm -rf "$site"
    mv "$site.new" "$site"
    local raw gz
    raw=$(find "$site" -type f -exec du -cb {} + | awk '$2 == "total" {s += $1} END {print s}')
    gz=$(find "$site" -type f | while read -r f; do gzip -9 -c "$f" | wc -c; done | awk '{s += $1} END {print s}')
    say "site: $((raw / 1024)) KiB, $((gz / 1024)) KiB gzipped"
    echo "$site"
}

# The Web Workers' conv kernel (crates/conv-worker, web/pool.js): a module of its own that
# imports its memory, which the workers share with the page's main thread, so its import is
# marked shared (wasm-ld marks it so only for objects built with atomics, and the standard
# library here is not; the kernel has no atomics of its own: web/pool.js synchronises).
conv_worker() {
    cargo_wasm rustc --locked --release -p difflab-conv-worker --lib --crate-type cdylib -- \
        -C link-arg=--import-memory -C link-arg=--max-memory=2147483648 \
        -C link-arg=--export=__heap_base >&2
    python3 - "$CARGO_TARGET_DIR/$target/release/difflab_conv_worker.wasm" "$1" <<'PY'
import sys
wasm = open(sys.argv[1], "rb").read()
# The import env.memory: its limits' flag 0x01 (a maximum) becomes 0x03 (a maximum, shared).
unshared = b"\x03env\x06memory\x02\x01"
assert wasm.count(unshared) == 1, "conv_worker.wasm: no unshared env.memory import"
open(sys.argv[2], "wb").write(wasm.replace(unshared, b"\x03env\x06memory\x02\x03"))
PY
}

serve() {
    say "serving $site on http://127.0.0.1:$port (Ctrl+C stops)"
    exec python3 "$root/tools/web/serve.py" "$site" "$port"
}

web_test() {
    command -v chromium >/dev/null || {
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -qq chromium >/dev/null
        else
            say "the browser test needs Debian's chromium"
            exit 2
        fi
    }
    (cd tools/web && [ -d node_modules/playwright-core ] || npm ci --silent --no-audit --no-fund >&2)
    python3 tools/web/serve.py "$site" "$port" >/dev/null 2>&1 &
    local server=$!
    # The same site as GitHub Pages serves it, without the isolation headers (web/coi.js).
    python3 tools/web/serve.py "$site" "$((port + 1))" --plain >/dev/null 2>&1 &
    local plain=$!
    # shellcheck disable=SC2064 # the servers' pids, now: the variables are gone at exit
    trap "kill $server $plain 2>/dev/null" EXIT
    sleep 0.5
    node tools/web/test.mjs "http://127.0.0.1:$port/" --plain "http://127.0.0.1:$((port + 1))/" \
        --shots "$CARGO_TARGET_DIR/web-shots" "$@"
}

# The direct conv kernels' simd128 path (crates/kernels/src/direct.rs) is what the page runs;
# their test against gemm, built for wasm32-wasip1 with +simd128, runs under Node's WASI.
kernels() {
    command -v node >/dev/null || { say "the kernels' wasm test needs node"; exit 3; }
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
        rustup target add wasm32-wasip1 >&2 || { say "rustup cannot fetch the wasm32-wasip1 standard library here"; exit 3; }
    fi
    CARGO_TARGET_WASM32_WASIP1_RUNNER="node $root/tools/wasi/run.mjs" \
        CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128" \
        cargo test --locked --release -p difflab-kernels --target wasm32-wasip1 -- direct_kernels_match_gemm
}

case "${1:-}" in
    check) check ;;
    kernels) kernels ;;
    build) build ;;
    serve) build >/dev/null && serve ;;
    test) shift; build >/dev/null && web_test "$@" ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
esac
