//! GroupNorm + SiLU forward on one image (see norm.rs for the equations): the loop body of
//! norm.rs's `group_norm_forward`, apart so that the page's kernel workers (crates/conv-worker)
//! compile the same code (the same sums in the same order: the same values, bit for bit).

use std::mem::MaybeUninit;

use crate::simd::{LANES, multiversion, sigmoid, sum};

multiversion! {
    /// One channel forward: y = silu(x·scale + shift), or x·scale + shift.
    pub(crate) fn affine_silu(x: &[f32], y: &mut [MaybeUninit<f32>], scale: f32, shift: f32, silu: bool) {
        if silu {
            for (o, &v) in y.iter_mut().zip(x) {
                let a = v * scale + shift;
                o.write(a * sigmoid(a));
            }
        } else {
            for (o, &v) in y.iter_mut().zip(x) {
                o.write(v * scale + shift);
            }
        }
    }
}

multiversion! {
    /// Σ (x − c)², as [`sum`].
    fn centred_squares(x: &[f32], c: f32) -> f64 {
        let mut acc = [0.0f32; LANES];
        let n = x.len() / LANES * LANES;
        for v in x[..n].chunks_exact(LANES) {
            for l in 0..LANES {
                let d = v[l] - c;
                acc[l] += d * d;
            }
        }
        let tail: f64 = x[n..].iter().map(|&v| f64::from(v - c).powi(2)).sum();
        acc.iter().map(|&v| f64::from(v)).sum::<f64>() + tail
    }
}

/// One image `x` `[C, spatial]` of a GroupNorm (+ SiLU): `y` from it, and `stats` (μ, r) for each
/// of its `groups`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn group_norm_image(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    spatial: usize,
    groups: usize,
    epsilon: f64,
    silu: bool,
    y: &mut [MaybeUninit<f32>],
    stats: &mut [f32],
) {
    let channels_per_group = gamma.len() / groups;
    let group_len = channels_per_group * spatial;
    for (gi, ((yg, xg), sg)) in y
        .chunks_exact_mut(group_len)
        .zip(x.chunks_exact(group_len))
        .zip(stats.chunks_exact_mut(2))
        .enumerate()
    {
        // Two passes: the mean, then the centred second moment (partial sums in f32, totals in
        // f64).
        let mean = sum(xg) / group_len as f64;
        let var = centred_squares(xg, mean as f32) / group_len as f64;
        let r = 1.0 / (var + epsilon).sqrt();
        sg[0] = mean as f32;
        sg[1] = r as f32;
        for (ci, (yc, xc)) in yg
            .chunks_exact_mut(spatial)
            .zip(xg.chunks_exact(spatial))
            .enumerate()
        {
            let c = gi * channels_per_group + ci;
            // a = γ·(x − μ)·r + β = x·scale + shift
            let scale = (f64::from(gamma[c]) * r) as f32;
            let shift = (f64::from(beta[c]) - mean * f64::from(gamma[c]) * r) as f32;
            affine_silu(xc, yc, scale, shift, silu);
        }
    }
}
