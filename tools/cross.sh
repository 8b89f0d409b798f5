#!/usr/bin/env bash
# difflab on Windows and macOS, checked from a Linux machine.
#
#   tools/cross.sh check [TARGET…]   cargo check --locked --all-targets (then clippy -D warnings)
#                                    for x86_64-pc-windows-gnu, aarch64-apple-darwin and
#                                    x86_64-apple-darwin (or the targets named)
#   tools/cross.sh windows           link the Windows binary with mingw-w64; its path is the last
#                                    line printed
#   tools/cross.sh wine              the Windows binary under wine: --help, schedule, a DDIM-10
#                                    sample of 4 digits equal to the Linux build's within 1e-4
#                                    (the f32 samples, `sample --tensor`),
#                                    a bad input (exit 2, one line); the app's window under Xvfb
#                                    when DISPLAY is set (a screenshot in $CROSS_OUT)
#
# The targets' standard libraries come from rustup (`rustup target add`, run here). Where rustup
# cannot fetch them, CROSS_DEBIAN=1 uses Debian's rustc-web, cargo-web and rust-web-src instead
# (Rust 1.85, std built from source with -Zbuild-std): today a dependency (awint's proc macro,
# under cubecl) needs Rust 1.86's standard library on the host, so that route stops there (the
# same wall as the browser build's, docs/web.md). Exit 3: no toolchain for a target could be
# had. Run before a stop that touches platform code (CI runs the native build only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
parent=$(cd .. && pwd)
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-$parent/target}}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
out="${CROSS_OUT:-$CARGO_TARGET_DIR/cross}"
win=x86_64-pc-windows-gnu
all_targets=("$win" aarch64-apple-darwin x86_64-apple-darwin)

say() { printf 'cross.sh: %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} = 0 ] && return
    command -v apt-get >/dev/null || { say "needs Debian packages: ${missing[*]}"; exit 2; }
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

# cargo for one target: rustup's standard library, or Debian's rustc-web building it. The
# target goes before a `--` (after it, cargo hands the arguments to the compiler).
cargo_for() {
    local target=$1
    shift
    local args=() rest=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    rest=("$@")
    set -- "${args[@]}" --target "$target" "${rest[@]}"
    if [ "${CROSS_DEBIAN:-0}" != 1 ] && command -v rustup >/dev/null 2>&1; then
        if rustup target list --installed 2>/dev/null | grep -qx "$target" ||
            rustup target add "$target" >&2; then
            cargo "$@"
            return
        fi
        say "rustup cannot fetch the $target standard library here (try CROSS_DEBIAN=1)"
        exit 3
    fi
    need_debs rustc-web cargo-web rust-web-src
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTC_WRAPPER="$root/tools/web/rustc-wrapper.sh" \
        /usr/bin/cargo "${args[@]}" --target "$target" -Zbuild-std=std,panic_abort --ignore-rust-version "${rest[@]}"
}

check() {
    local targets=("$@")
    [ ${#targets[@]} = 0 ] && targets=("${all_targets[@]}")
    # windows-gnu's import libraries are made with mingw-w64's dlltool.
    need_debs mingw-w64
    for t in "${targets[@]}"; do
        say "checking $t"
        cargo_for "$t" check --locked --all-targets
        cargo_for "$t" clippy --locked --all-targets -- -D warnings
    done
    say "checked: ${targets[*]}"
}

windows() {
    need_debs mingw-w64
    cargo_for "$win" build --locked --bin difflab >&2
    echo "$CARGO_TARGET_DIR/$win/debug/difflab.exe"
}

# The largest difference between two PNGs of the same size, pixel by pixel, in [0, 1].
png_max_diff() {
    python3 - "$1" "$2" <<'EOF'
import sys, zlib, struct
def pixels(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', path
    pos, idat, w, h, ct, bd = 8, b'', 0, 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h, bd, ct = struct.unpack('>IIBB', body[:10])
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    assert bd == 8, f'{path}: bit depth {bd}'
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
    raw, stride, prev, rows = zlib.decompress(idat), w * ch, None, []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        prev = prev or bytearray(stride)
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], (prev[i - ch] if i >= ch else 0)
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    return (w, h, ch), b''.join(rows)
(sa, a), (sb, b) = pixels(sys.argv[1]), pixels(sys.argv[2])
assert sa == sb, f'sizes {sa} and {sb}'
print(max(abs(x - y) for x, y in zip(a, b)) / 255.0)
EOF
}

# Rust's standard library (1.78 and later) draws its random seeds from ProcessPrng in
# bcryptprimitives.dll, which Windows 10 and 11 have and Debian 12's wine 8.0 does not (the
# binary then stops before main with status c0000135). On such a wine, a one-function DLL
# built here with mingw-w64 gives ProcessPrng from RtlGenRandom, in the wine prefix only.
wine_prng_shim() {
    local sys32="$WINEPREFIX/drive_c/windows/system32"
    wineboot -i >/dev/null 2>&1 || true
    [ -e "$sys32/bcryptprimitives.dll" ] && return
    say "wine has no bcryptprimitives.dll: adding a ProcessPrng shim to $WINEPREFIX"
    local tmp
    tmp=$(mktemp -d)
    cat > "$tmp/bcp.c" <<'C'
#include <windows.h>
#include <ntsecapi.h>
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
C
    printf 'LIBRARY bcryptprimitives\nEXPORTS\nProcessPrng\n' > "$tmp/bcp.def"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" "$tmp/bcp.c" "$tmp/bcp.def" -ladvapi32
    rm -rf "$tmp"
}

wine_checks() {
    need_debs wine wine64
    local exe native
    exe=$(windows | tail -n 1)
    say "building the Linux binary to compare with"
    cargo build --locked --bin difflab >&2
    native="$CARGO_TARGET_DIR/debug/difflab"
    mkdir -p "$out"
    export WINEDEBUG=-all WINEPREFIX="${WINEPREFIX:-$parent/wine-prefix}"
    wine_prng_shim
    local w=(wine "$exe")
    say "wine: --help"
    "${w[@]}" --help | grep -q "Usage" || { say "FAIL: --help"; exit 1; }
    say "wine: --version: $("${w[@]}" --version | tr -d '\r')"
    say "wine: schedule"
    "${w[@]}" schedule --format csv -o "$(winepath -w "$out/schedule-windows.csv")" >&2
    "$native" schedule --format csv -o "$out/schedule-linux.csv" >&2
    python3 - "$out/schedule-windows.csv" "$out/schedule-linux.csv" <<'EOF'
import sys
a = [l.strip() for l in open(sys.argv[1])]
b = [l.strip() for l in open(sys.argv[2])]
assert len(a) == len(b) and a[0] == b[0], 'headers or lengths differ'
worst = max(abs(float(x) - float(y)) for la, lb in zip(a[1:], b[1:])
            for x, y in zip(la.split(','), lb.split(',')))
print(f'cross.sh: schedule: {len(a) - 1} rows, largest difference {worst:.2e}', file=sys.stderr)
assert worst <= 1e-6, worst
EOF
    say "wine: sample (the shipped U-Net, DDIM-10, 4 digits, seed 7, the CPU)"
    local args=(--device cpu sample --model unet --sampler ddim --steps 10 --count 4 --seed 7)
    "${w[@]}" "${args[@]}" -o "$(winepath -w "$out/sample-windows.png")" \
        --tensor "$(winepath -w "$out/sample-windows.safetensors")" >&2
    "$native" "${args[@]}" -o "$out/sample-linux.png" --tensor "$out/sample-linux.safetensors" >&2
    # The samples before rounding to pixels, and the PNGs' pixels: within 1e-4 (so the pixels
    # are equal).
    python3 - "$out/sample-windows.safetensors" "$out/sample-linux.safetensors" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    meta = json.loads(b[8:8 + n])['samples']
    lo, hi = meta['data_offsets']
    return meta['shape'], struct.unpack(f'<{(hi - lo) // 4}f', b[8 + n + lo:8 + n + hi])
(sa, a), (sb, b) = read(sys.argv[1]), read(sys.argv[2])
assert sa == sb, (sa, sb)
worst = max(abs(x - y) for x, y in zip(a, b))
same = sum(x == y for x, y in zip(a, b))
print(f'cross.sh: samples {sa}: largest difference {worst:.2e}, {same} of {len(a)} values equal to the bit', file=sys.stderr)
sys.exit(0 if worst <= 1e-4 else 1)
PY
    local diff
    diff=$(png_max_diff "$out/sample-windows.png" "$out/sample-linux.png")
    say "sample PNGs: largest pixel difference $diff (of 1)"
    python3 -c "import sys; sys.exit(0 if float('$diff') <= 1e-4 else 1)" ||
        { say "FAIL: the Windows PNG differs from Linux's by $diff"; exit 1; }
    say "wine: a bad input"
    local rc=0 err
    err=$("${w[@]}" sample --model unet --steps 0 -o "$(winepath -w "$out/never.png")" 2>&1 >/dev/null) || rc=$?
    err=$(printf '%s' "$err" | tr -d '\r')
    # One error line, the last (notices such as "computing on flex" may come before it).
    local last
    last=$(printf '%s\n' "$err" | tail -n 1)
    [ "$rc" = 2 ] && [ "$(printf '%s\n' "$err" | grep -c '^error')" = 1 ] &&
        [ "${last#error: }" != "$last" ] && [ ! -e "$out/never.png" ] ||
        { say "FAIL: exit $rc, stderr: $err"; exit 1; }
    say "bad input: exit 2, '$last'"
    if [ -n "${DISPLAY:-}" ]; then
        say "wine: the app's window (30 s)"
        # wgpu picks Direct3D 12 first, which wine 8's vkd3d cannot give it (the device is lost
        # at once): the app then retries on Vulkan and OpenGL by itself (winevulkan passes
        # Vulkan on to Mesa's lavapipe), which is what this checks.
        "${w[@]}" gui --fresh > "$out/gui-wine.log" 2>&1 &
        local pid=$!
        sleep 30
        kill -0 "$pid" 2>/dev/null || { say "FAIL: the app's window closed: $(tail -n 2 "$out/gui-wine.log")"; exit 1; }
        command -v xwd >/dev/null && xwd -root -silent > "$out/gui-wine.xwd" || true
        kill "$pid" 2>/dev/null || true
        wineserver -k 2>/dev/null || true
        say "window: $out/gui-wine.xwd (log $out/gui-wine.log)"
    fi
    say "wine checks passed"
}

case "${1:-check}" in
    check) shift || true; check "$@" ;;
    windows) windows ;;
    wine) wine_checks ;;
    *) say "usage: tools/cross.sh check [TARGET…] | windows | wine"; exit 2 ;;
esac
