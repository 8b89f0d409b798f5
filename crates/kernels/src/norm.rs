//! GroupNorm (Wu & He 2018) fused with an optional SiLU, on NCHW `f32` slices, forward and
//! backward, one pass over memory each way instead of the ten or so of the composed ops.
//!
//! For image n and group g (M = C/G·H·W elements):
//! - μ = mean(x), σ² = mean((x − μ)²), r = 1/√(σ² + ε)          (statistics, kept for backward)
//! - x̂ = (x − μ)·r,  a = γ_c·x̂ + β_c,  y = a·sigmoid(a) (or y = a without SiLU)
//! - backward: da = dy·sigmoid(a)·(1 + a·(1 − sigmoid(a))),  dβ_c = Σ da,  dγ_c = Σ da·x̂,
//!   dx̂ = γ_c·da,  dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::helpers;
use crate::norm_image::group_norm_image;
use crate::simd::{LANES, multiversion, sigmoid};

/// The shapes of one GroupNorm call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormGeometry {
    /// Images.
    pub batch: usize,
    /// Channels (a multiple of `groups`).
    pub channels: usize,
    /// Elements per channel (H·W).
    pub spatial: usize,
    /// Groups.
    pub groups: usize,
}

impl NormGeometry {
    /// Elements of one image.
    pub fn image_len(&self) -> usize {
        self.channels * self.spatial
    }

    fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }

    /// Checks that the groups divide the channels.
    pub fn is_valid(&self) -> bool {
        self.groups > 0
            && self.channels > 0
            && self.spatial > 0
            && self.channels.is_multiple_of(self.groups)
    }
}

multiversion! {
    /// One channel's backward, pass 1: writes dx̂ = γ·da into `out` and returns
    /// [Σ da·x̂, Σ da, Σ dx̂, Σ dx̂·x̂].
    #[allow(clippy::too_many_arguments)]
    fn channel_backward(
        x: &[f32],
        dy: &[f32],
        out: &mut [f32],
        mean: f32,
        r: f32,
        gamma: f32,
        beta: f32,
        silu: bool,
    ) -> [f32; 4] {
        let mut acc = [[0.0f32; LANES]; 4];
        let step = |acc: &mut [[f32; LANES]; 4], l: usize, o: &mut f32, v: f32, d: f32| {
            let xh = (v - mean) * r;
            let da = if silu {
                let a = gamma * xh + beta;
                let s = sigmoid(a);
                d * s * (1.0 + a * (1.0 - s))
            } else {
                d
            };
            let dxh = da * gamma;
            acc[0][l] += da * xh;
            acc[1][l] += da;
            acc[2][l] += dxh;
            acc[3][l] += dxh * xh;
            *o = dxh;
        };
        let n = x.len() / LANES * LANES;
        for ((o, xv), dv) in out[..n]
            .chunks_exact_mut(LANES)
            .zip(x[..n].chunks_exact(LANES))
            .zip(dy[..n].chunks_exact(LANES))
        {
            for l in 0..LANES {
                step(&mut acc, l, &mut o[l], xv[l], dv[l]);
            }
        }
        for i in n..x.len() {
            step(&mut acc, 0, &mut out[i], x[i], dy[i]);
        }
        acc.map(|a| a.iter().sum())
    }
}

multiversion! {
    /// Backward, pass 2: dx = r·(dx̂ − m1 − x̂·m2), in place over dx̂.
    fn finish_backward(x: &[f32], out: &mut [f32], mean: f32, r: f32, m1: f32, m2: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            let xh = (v - mean) * r;
            *o = r * (*o - m1 - xh * m2);
        }
    }
}

/// The forward pass: `y` from `x`; `stats` receives (μ, r) for each (image, group), in that
/// order, `2·N·G` values.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    g: &NormGeometry,
    epsilon: f64,
    silu: bool,
    y: &mut [MaybeUninit<f32>],
    stats: &mut [f32],
) {
    assert!(g.is_valid(), "group norm: {g:?}");
    assert_eq!(x.len(), g.batch * g.image_len(), "group norm: input length");
    assert_eq!(y.len(), x.len(), "group norm: output length");
    assert_eq!(gamma.len(), g.channels, "group norm: gamma length");
    assert_eq!(beta.len(), g.channels, "group norm: beta length");
    assert_eq!(
        stats.len(),
        2 * g.batch * g.groups,
        "group norm: stats length"
    );
    let (len, two_g) = (g.image_len(), 2 * g.groups);
    // Helpers outside rayon (the page's Web Workers: see `helpers`) take the batch's last
    // images; this thread computes the first ones meanwhile.
    let shared = helpers::split(g.batch, len >= helpers::MIN_NORM_LEN);
    let own = shared.as_ref().map_or(g.batch, |s| s.own);
    for (p, s) in shared
        .iter()
        .flat_map(|s| s.parts.iter().map(move |p| (p, s)))
    {
        let share = helpers::NormShare {
            x: &x[p.first * len..][..p.images * len],
            images: p.images,
            gamma,
            beta,
            spatial: g.spatial,
            groups: g.groups,
            epsilon,
            silu,
        };
        s.helpers.start_norm(p.helper, &share);
    }
    let (y_own, y_helped) = y.split_at_mut(own * len);
    let (stats_own, stats_helped) = stats.split_at_mut(own * two_g);
    let image = |n: usize, yi: &mut [MaybeUninit<f32>], si: &mut [f32]| {
        let xi = &x[n * len..][..len];
        group_norm_image(xi, gamma, beta, g.spatial, g.groups, epsilon, silu, yi, si);
    };
    y_own
        .par_chunks_mut(len)
        .zip(stats_own.par_chunks_mut(two_g))
        .enumerate()
        .for_each(|(n, (yi, si))| image(n, yi, si));
    let Some(s) = &shared else { return };
    for &helpers::Part {
        helper,
        first,
        images,
    } in &s.parts
    {
        // The images the helper has not begun, computed here rather than waited for.
        let mut mine = vec![false; images];
        while let Some(j) = s.helpers.claim(helper) {
            mine[j] = true;
            let n = first + j;
            let (yi, si) = (
                &mut y_helped[(n - own) * len..][..len],
                &mut stats_helped[(n - own) * two_g..][..two_g],
            );
            image(n, yi, si);
        }
        let mut out = vec![0.0f32; images * (len + two_g)];
        s.helpers.finish(helper, &mut out);
        let (ys, ss) = out.split_at(images * len);
        for j in (0..images).filter(|&j| !mine[j]) {
            let n = first + j - own;
            for (o, &v) in y_helped[n * len..][..len].iter_mut().zip(&ys[j * len..]) {
                o.write(v);
            }
            stats_helped[n * two_g..][..two_g].copy_from_slice(&ss[j * two_g..][..two_g]);
        }
    }
}

/// The gradients of [`group_norm_backward`].
#[derive(Debug)]
pub struct NormGrads {
    /// ∂L/∂x.
    pub x: Vec<f32>,
    /// ∂L/∂γ.
    pub gamma: Vec<f32>,
    /// ∂L/∂β.
    pub beta: Vec<f32>,
}

/// The backward pass, from the forward's input, parameters and `stats`.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    stats: &[f32],
    dy: &[f32],
    g: &NormGeometry,
    silu: bool,
) -> NormGrads {
    assert!(g.is_valid(), "group norm backward: {g:?}");
    assert_eq!(
        x.len(),
        g.batch * g.image_len(),
        "group norm backward: input length"
    );
    assert_eq!(dy.len(), x.len(), "group norm backward: gradient length");
    assert_eq!(
        stats.len(),
        2 * g.batch * g.groups,
        "group norm backward: stats length"
    );
    let cpg = g.channels_per_group();
    let group_len = cpg * g.spatial;
    let m = group_len as f32;
    let mut dx = crate::zeroed(x.len());
    // Per image: its share of dγ and dβ (summed over images in order afterwards).
    let per_image: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(g.image_len())
        .zip(x.par_chunks(g.image_len()))
        .zip(dy.par_chunks(g.image_len()))
        .zip(stats.par_chunks(2 * g.groups))
        .map(|(((dxi, xi), dyi), si)| {
            let mut dgamma = vec![0.0f32; g.channels];
            let mut dbeta = vec![0.0f32; g.channels];
            for (gi, (((dxg, xg), dyg), sg)) in dxi
                .chunks_exact_mut(group_len)
                .zip(xi.chunks_exact(group_len))
                .zip(dyi.chunks_exact(group_len))
                .zip(si.chunks_exact(2))
                .enumerate()
            {
                let (mean, r) = (sg[0], sg[1]);
                let mut sum_dxh = 0.0f64;
                let mut sum_dxh_xh = 0.0f64;
                // Pass 1: dx̂ into dx, and the two group sums.
                for ci in 0..cpg {
                    let c = gi * cpg + ci;
                    let range = ci * g.spatial..(ci + 1) * g.spatial;
                    let [dg, db, s1, s2] = channel_backward(
                        &xg[range.clone()],
                        &dyg[range.clone()],
                        &mut dxg[range],
                        mean,
                        r,
                        gamma[c],
                        beta[c],
                        silu,
                    );
                    dgamma[c] += dg;
                    dbeta[c] += db;
                    sum_dxh += f64::from(s1);
                    sum_dxh_xh += f64::from(s2);
                }
                // Pass 2: dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)).
                let mean1 = (sum_dxh / f64::from(m)) as f32;
                let mean2 = (sum_dxh_xh / f64::from(m)) as f32;
                finish_backward(xg, dxg, mean, r, mean1, mean2);
            }
            (dgamma, dbeta)
        })
        .collect();
    let mut dgamma = vec![0.0f32; g.channels];
    let mut dbeta = vec![0.0f32; g.channels];
    for (dg, db) in &per_image {
        dgamma.iter_mut().zip(dg).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(db).for_each(|(a, b)| *a += b);
    }
    NormGrads {
        x: dx,
        gamma: dgamma,
        beta: dbeta,
    }
}
