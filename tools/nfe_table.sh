#!/usr/bin/env bash
# Quality against NFE on the shipped U-Net (docs/guide/models.md): `difflab eval` of 500 digits
# from seed 0 for each solver at 5, 10 and 20 model evaluations, one line per cell:
# solver | NFE | mean judge confidence | Fréchet ratio. About 25 s a cell on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${DIFFLAB:-${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}/debug/difflab}"
[ -x "$bin" ] || { cargo build --locked --bin difflab >&2; }
cell() { # label nfe eval-args...
    local label=$1 nfe=$2 out conf ratio
    shift 2
    out=$("$bin" --device cpu eval --count 500 --guidance 1 "$@" 2>&1)
    conf=$(printf '%s\n' "$out" | awk '/mean classifier confidence/ {print $4}')
    ratio=$(printf '%s\n' "$out" | sed -n 's/^Fréchet distance.*ratio \([0-9.]*\)).*/\1/p')
    echo "$label | $nfe | $conf | $ratio"
}
for n in 5 10 20; do
    cell "DDIM" "$n" --sampler ddim --steps "$n"
    cell "DPM-Solver++ 2M" "$n" --sampler dpm-solver++ --steps "$n"
    cell "DPM-Solver++ 2M Karras" "$n" --sampler dpm-solver++ --karras --steps "$n"
    cell "UniPC 2M" "$n" --sampler unipc --steps "$n"
    cell "Euler" "$n" --sampler euler --steps "$n"
    cell "Euler a" "$n" --sampler euler-a --steps "$n"
done
cell "Heun" 5 --sampler heun --steps 3
cell "Heun" 9 --sampler heun --steps 5
cell "Heun" 19 --sampler heun --steps 10
cell "DDIM" 50 --sampler ddim --steps 50
