#!/usr/bin/env bash
# Quality against NFE (docs/guide/models.md, the README): `difflab eval` of 500 digits from seed 0
# for each solver at 5, 10, 20 and 50 model evaluations on the shipped diffusion U-Net, and flow
# matching's Euler on the shipped flow-matching U-Net; one markdown row per cell:
# solver | NFE | mean judge confidence | scrawls | Fréchet ratio | sampling wall time.
# About 30 s a cell on two cores (the judge trains in each); the whole table about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${DIFFLAB:-${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}/debug/difflab}"
[ -x "$bin" ] || { cargo build --locked --bin difflab >&2; }
cell() { # label nfe eval-args...
    local label=$1 nfe=$2 out conf scrawls ratio secs
    shift 2
    out=$("$bin" --device cpu eval --count 500 --guidance 1 "$@" 2>&1)
    conf=$(printf '%s\n' "$out" | awk '/mean classifier confidence/ {print $4}')
    scrawls=$(printf '%s\n' "$out" | awk '/^scrawls/ {print $NF}')
    ratio=$(printf '%s\n' "$out" | sed -n 's/^Fréchet distance.*ratio \([0-9.]*\)).*/\1/p')
    secs=$(printf '%s\n' "$out" | sed -n 's/^500 samples (.*) in \([0-9.]*\) s$/\1/p')
    echo "| $label | $nfe | $conf | $scrawls | $ratio | $secs s |"
}
flow=assets/models/mnist-flow-unet.safetensors
echo "| solver | NFE | confidence | scrawls | Fréchet ratio | wall |"
echo "| --- | --- | --- | --- | --- | --- |"
for n in 5 10 20 50; do
    cell "DDIM" "$n" --sampler ddim --steps "$n"
    cell "DPM-Solver++ 2M" "$n" --sampler dpm-solver++ --steps "$n"
    cell "DPM-Solver++ 2M Karras" "$n" --sampler dpm-solver++ --karras --steps "$n"
    cell "UniPC 2M" "$n" --sampler unipc --steps "$n"
    cell "Euler" "$n" --sampler euler --steps "$n"
    cell "Euler a" "$n" --sampler euler-a --steps "$n"
    cell "Heun" "$((n - 1 + n % 2))" --sampler heun --steps "$(((n + 1) / 2))"
    cell "Flow Euler (flow net)" "$n" --weights "$flow" --sampler flow-euler --steps "$n"
done
