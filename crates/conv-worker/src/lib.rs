//! difflab-kernels' direct forward conv kernel and its GroupNorm + SiLU forward on an image
//! (its `direct.rs` and `norm_image.rs`, the same files) as a small WebAssembly module of its
//! own, for the page's Web Workers.
//!
//! The page's main thread may not block, so it cannot share a conv through rayon; instead each
//! Web Worker instantiates this module on a shared memory of its own, the main thread copies a
//! share of a batch's padded images and the packed weights into that memory, wakes the worker,
//! computes its own images, then copies the worker's outputs back (web/pool.js,
//! difflab-kernels' `helpers`). The module allocates nothing: web/pool.js lays the data out in
//! the memory above `__heap_base`, and the kernel reads and writes only there (its own stack
//! lies below).
//!
//! Built by `tools/web.sh build` for wasm32 with `+simd128` (the kernel's 4 × 2 tiles of
//! 4-lane vectors, as in the page's own module); natively it runs the same kernel on AVX2 or
//! AVX-512, for the tests.

#![allow(dead_code)] // direct.rs's weight-gradient kernel and simd.rs's other loops are not used here

#[path = "../../kernels/src/direct.rs"]
mod direct;
#[path = "../../kernels/src/norm_image.rs"]
mod norm_image;
#[path = "../../kernels/src/simd.rs"]
mod simd;

use std::cell::Cell;

/// Runs `f` with `flag` set on this thread (direct.rs's `with_avx2_kernels` uses it).
pub(crate) fn with_flag<R>(
    flag: &'static std::thread::LocalKey<Cell<bool>>,
    f: impl FnOnce() -> R,
) -> R {
    let old = flag.with(|s| s.replace(true));
    let r = f();
    flag.with(|s| s.set(old));
    r
}

/// For each of `images` images i, `y[i·rows·cols + o·cols + q] = Σ_k w[o][k] · xc[i·xc_len +
/// offs[k] + q]` (o < rows, q < cols): difflab-kernels' direct forward conv on image i's
/// zero-padded planes, with `w` packed for `rows` rows and `k` terms. Returns 1, or 0 (nothing
/// written) where the direct kernel has no instruction set to run on.
///
/// # Safety
/// `xc` must be valid for `images·xc_len` reads, `offs` for `k`, `w` for the packed weights
/// (`⌈rows/8⌉·k·8`), and `y` for `images·rows·cols` writes; `offs[k] + cols ≤ xc_len` for every
/// k, and `cols` a multiple of 16 (the kernel asserts the last two).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn conv_images(
    xc: *const f32,
    xc_len: usize,
    images: usize,
    offs: *const usize,
    k: usize,
    w: *const f32,
    w_len: usize,
    rows: usize,
    y: *mut f32,
    cols: usize,
) -> u32 {
    let Some(isa) = direct::isa() else {
        return 0;
    };
    // SAFETY: the caller's promise above.
    let (xc, offs, w, y) = unsafe {
        (
            std::slice::from_raw_parts(xc, images * xc_len),
            std::slice::from_raw_parts(offs, k),
            std::slice::from_raw_parts(w, w_len),
            std::slice::from_raw_parts_mut(y, images * rows * cols),
        )
    };
    for (xi, yi) in xc.chunks_exact(xc_len).zip(y.chunks_exact_mut(rows * cols)) {
        direct::conv_wide(isa, xi, offs, w, rows, yi, cols, cols);
    }
    1
}

/// difflab-kernels' GroupNorm (+ SiLU when `silu` is 1) forward of one image `x` `[channels,
/// spatial]`: `y`, and `stats` (μ, r) for each of its `groups`.
///
/// # Safety
/// `x` and `y` must be valid for `channels·spatial` floats, `gamma` and `beta` for `channels`,
/// `stats` for `2·groups`; `groups` must divide `channels`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn norm_image(
    x: *const f32,
    y: *mut f32,
    stats: *mut f32,
    gamma: *const f32,
    beta: *const f32,
    channels: usize,
    spatial: usize,
    groups: usize,
    epsilon: f64,
    silu: u32,
) {
    let len = channels * spatial;
    // SAFETY: the caller's promise above (f32 and MaybeUninit<f32> share a layout).
    let (x, y, stats, gamma, beta) = unsafe {
        (
            std::slice::from_raw_parts(x, len),
            std::slice::from_raw_parts_mut(y.cast::<std::mem::MaybeUninit<f32>>(), len),
            std::slice::from_raw_parts_mut(stats, 2 * groups),
            std::slice::from_raw_parts(gamma, channels),
            std::slice::from_raw_parts(beta, channels),
        )
    };
    norm_image::group_norm_image(
        x,
        gamma,
        beta,
        spatial,
        groups,
        epsilon,
        silu == 1,
        y,
        stats,
    );
}

#[cfg(test)]
mod tests {
    use super::{conv_images, direct};

    /// Two images of 3 channels on 6 × 7 planes, 10 output rows (a block and a part), a 3 × 3
    /// kernel: every output against the sum written out.
    #[test]
    fn conv_images_is_the_direct_sum_for_each_image() {
        if direct::isa().is_none() {
            return; // no AVX2: the kernel does not run here (and the page always has simd128)
        }
        let (channels, plane, wp, rows, cols) = (3usize, 42usize, 7usize, 10usize, 16usize);
        let mut offs = Vec::new();
        for c in 0..channels {
            for ky in 0..3 {
                for kx in 0..3 {
                    offs.push(c * plane + ky * wp + kx);
                }
            }
        }
        let k = offs.len();
        let xc_len = offs.iter().max().unwrap() + cols;
        let images = 2;
        let xc: Vec<f32> = (0..images * xc_len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let weight = |o: usize, kk: usize| ((o * 13 + kk * 7) % 23) as f32 / 11.0 - 1.0;
        let w = direct::pack_rows(rows, k, weight);
        let mut y = vec![f32::NAN; images * rows * cols];
        // SAFETY: every length as the function asks.
        let ran = unsafe {
            conv_images(
                xc.as_ptr(),
                xc_len,
                images,
                offs.as_ptr(),
                k,
                w.as_ptr(),
                w.len(),
                rows,
                y.as_mut_ptr(),
                cols,
            )
        };
        assert_eq!(ran, 1);
        for i in 0..images {
            for o in 0..rows {
                for q in 0..cols {
                    let want: f64 = (0..k)
                        .map(|kk| {
                            f64::from(weight(o, kk)) * f64::from(xc[i * xc_len + offs[kk] + q])
                        })
                        .sum();
                    let got = f64::from(y[(i * rows + o) * cols + q]);
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "image {i}, row {o}, column {q}: {got} against {want}"
                    );
                }
            }
        }
    }
}
