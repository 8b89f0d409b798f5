//! Single-head self-attention on the packed projections of a batch, `[B, T, 3C]` (Q, K, V side
//! by side, as one Linear makes them): O = softmax(Q·Kᵀ/√C)·V (Vaswani et al. 2017), forward and
//! backward, each image's matmuls straight on the strided views (no slicing copies), the softmax
//! with the vectorised exp.
//!
//! Backward, with P = softmax(S), S = Q·Kᵀ·s, s = 1/√C:
//! dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = s·dS·K,  dK = s·dSᵀ·Q.

use gemm::Parallelism;
use rayon::prelude::*;

use crate::conv::{matmul, with_scratch};
use crate::simd::{exp, multiversion};

/// The shapes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionGeometry {
    /// Images.
    pub batch: usize,
    /// Tokens per image (pixels).
    pub tokens: usize,
    /// Channels of Q, K and V each.
    pub channels: usize,
}

impl AttentionGeometry {
    fn qkv_len(&self) -> usize {
        self.tokens * 3 * self.channels
    }

    fn out_len(&self) -> usize {
        self.tokens * self.channels
    }

    fn probs_len(&self) -> usize {
        self.tokens * self.tokens
    }

    fn scale(&self) -> f32 {
        1.0 / (self.channels as f32).sqrt()
    }
}

multiversion! {
    /// Row-wise softmax, in place.
    fn softmax_rows(s: &mut [f32], width: usize) {
        for row in s.chunks_exact_mut(width) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0f32;
            for v in row.iter_mut() {
                *v = exp(*v - max);
                sum += *v;
            }
            let inv = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place over dP.
    fn softmax_backward_rows(p: &[f32], dp: &mut [f32], width: usize) {
        for (pr, dr) in p.chunks_exact(width).zip(dp.chunks_exact_mut(width)) {
            let dot: f32 = pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
            for (d, &pv) in dr.iter_mut().zip(pr) {
                *d = pv * (*d - dot);
            }
        }
    }
}

/// The forward pass: `out` `[B, T, C]` and the attention probabilities `probs` `[B, T, T]`
/// (kept for the backward pass).
pub fn attention_forward(qkv: &[f32], g: &AttentionGeometry, out: &mut [f32], probs: &mut [f32]) {
    let (t, c) = (g.tokens, g.channels);
    assert_eq!(qkv.len(), g.batch * g.qkv_len(), "attention: input length");
    assert_eq!(out.len(), g.batch * g.out_len(), "attention: output length");
    assert_eq!(
        probs.len(),
        g.batch * g.probs_len(),
        "attention: probabilities length"
    );
    let par = Parallelism::None;
    out.par_chunks_mut(g.out_len())
        .zip(probs.par_chunks_mut(g.probs_len()))
        .zip(qkv.par_chunks(g.qkv_len()))
        .for_each(|((o, p), x)| {
            let (q, k, v) = (x, &x[c..], &x[2 * c..]);
            // S (T×T) = Q (T×C) · Kᵀ (C×T), then scaled
            matmul(
                [t, t, c],
                p,
                [t, 1],
                false,
                q,
                [3 * c, 1],
                k,
                [1, 3 * c],
                par,
            );
            let s = g.scale();
            p.iter_mut().for_each(|v| *v *= s);
            softmax_rows(p, t);
            // O (T×C) = P (T×T) · V (T×C)
            matmul([t, c, t], o, [c, 1], false, p, [t, 1], v, [3 * c, 1], par);
        });
}

/// The backward pass: `dqkv` `[B, T, 3C]` from `dout` `[B, T, C]`.
pub fn attention_backward(
    qkv: &[f32],
    probs: &[f32],
    dout: &[f32],
    g: &AttentionGeometry,
    dqkv: &mut [f32],
) {
    let (t, c) = (g.tokens, g.channels);
    assert_eq!(
        qkv.len(),
        g.batch * g.qkv_len(),
        "attention backward: input length"
    );
    assert_eq!(dqkv.len(), qkv.len(), "attention backward: gradient length");
    assert_eq!(
        dout.len(),
        g.batch * g.out_len(),
        "attention backward: output gradient length"
    );
    assert_eq!(
        probs.len(),
        g.batch * g.probs_len(),
        "attention backward: probabilities length"
    );
    let par = Parallelism::None;
    let s = g.scale();
    dqkv.par_chunks_mut(g.qkv_len())
        .zip(qkv.par_chunks(g.qkv_len()))
        .zip(probs.par_chunks(g.probs_len()))
        .zip(dout.par_chunks(g.out_len()))
        .for_each(|(((dx, x), p), d_o)| {
            let (q, k, v) = (x, &x[c..], &x[2 * c..]);
            with_scratch(t * t, |ds| {
                // dV (T×C) = Pᵀ (T×T) · dO (T×C), into the V columns
                matmul(
                    [t, c, t],
                    &mut dx[2 * c..],
                    [3 * c, 1],
                    false,
                    p,
                    [1, t],
                    d_o,
                    [c, 1],
                    par,
                );
                // dP (T×T) = dO (T×C) · Vᵀ (C×T), then dS
                matmul(
                    [t, t, c],
                    ds,
                    [t, 1],
                    false,
                    d_o,
                    [c, 1],
                    v,
                    [1, 3 * c],
                    par,
                );
                softmax_backward_rows(p, ds, t);
                ds.iter_mut().for_each(|v| *v *= s);
                // dQ (T×C) = dS (T×T) · K (T×C); dK (T×C) = dSᵀ (T×T) · Q (T×C)
                matmul(
                    [t, c, t],
                    dx,
                    [3 * c, 1],
                    false,
                    ds,
                    [t, 1],
                    k,
                    [3 * c, 1],
                    par,
                );
                matmul(
                    [t, c, t],
                    &mut dx[c..],
                    [3 * c, 1],
                    false,
                    ds,
                    [1, t],
                    q,
                    [3 * c, 1],
                    par,
                );
            });
        });
}
