//! Nearest-neighbour ×2 upsampling on NCHW `f32` slices: each pixel becomes a 2×2 block, and
//! its gradient is the sum of the block's.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Planes (N·C) per rayon task.
const PLANES_PER_TASK: usize = 16;

/// `out` `[planes, 2H, 2W]` from `x` `[planes, H, W]`.
pub fn upsample2_forward(x: &[f32], [h, w]: [usize; 2], out: &mut [MaybeUninit<f32>]) {
    assert_eq!(out.len(), 4 * x.len(), "upsample: output length");
    if h == 0 || w == 0 {
        return;
    }
    out.par_chunks_mut(PLANES_PER_TASK * 4 * h * w)
        .zip(x.par_chunks(PLANES_PER_TASK * h * w))
        .for_each(|(op, xp)| {
            for (orows, row) in op.chunks_exact_mut(4 * w).zip(xp.chunks_exact(w)) {
                let (top, bottom) = orows.split_at_mut(2 * w);
                for ((pair, below), &v) in top
                    .chunks_exact_mut(2)
                    .zip(bottom.chunks_exact_mut(2))
                    .zip(row)
                {
                    for o in pair.iter_mut().chain(below) {
                        o.write(v);
                    }
                }
            }
        });
}

/// `dx` `[planes, H, W]` from `dy` `[planes, 2H, 2W]`: the sum over each 2×2 block.
pub fn upsample2_backward(dy: &[f32], [h, w]: [usize; 2], dx: &mut [f32]) {
    assert_eq!(dy.len(), 4 * dx.len(), "upsample backward: gradient length");
    if h == 0 || w == 0 {
        return;
    }
    dx.par_chunks_mut(PLANES_PER_TASK * h * w)
        .zip(dy.par_chunks(PLANES_PER_TASK * 4 * h * w))
        .for_each(|(xp, op)| {
            for (row, orows) in xp.chunks_exact_mut(w).zip(op.chunks_exact(4 * w)) {
                let (top, bottom) = orows.split_at(2 * w);
                for ((o, t), b) in row
                    .iter_mut()
                    .zip(top.chunks_exact(2))
                    .zip(bottom.chunks_exact(2))
                {
                    *o = (t[0] + t[1]) + (b[0] + b[1]);
                }
            }
        });
}

/// Concatenation along the channels of two NCHW batches: `out` `[N, A+B, H, W]` from `a`
/// `[N, A, H, W]` and `b` `[N, B, H, W]` (`a_len`, `b_len`: elements per image).
pub fn cat_channels(
    a: &[f32],
    b: &[f32],
    [a_len, b_len]: [usize; 2],
    out: &mut [MaybeUninit<f32>],
) {
    assert!(a_len > 0 && b_len > 0, "cat: empty images");
    assert_eq!(a.len() / a_len, b.len() / b_len, "cat: batch sizes differ");
    assert_eq!(out.len(), a.len() + b.len(), "cat: output length");
    out.par_chunks_mut(a_len + b_len)
        .zip(a.par_chunks(a_len).zip(b.par_chunks(b_len)))
        .for_each(|(o, (ai, bi))| {
            let (oa, ob) = o.split_at_mut(a_len);
            oa.write_copy_of_slice(ai);
            ob.write_copy_of_slice(bi);
        });
}

/// The inverse of [`cat_channels`]: the two parts of `dy`.
pub fn split_channels(dy: &[f32], [a_len, b_len]: [usize; 2], da: &mut [f32], db: &mut [f32]) {
    assert_eq!(dy.len(), da.len() + db.len(), "split: lengths");
    dy.par_chunks(a_len + b_len)
        .zip(da.par_chunks_mut(a_len).zip(db.par_chunks_mut(b_len)))
        .for_each(|(d, (ai, bi))| {
            ai.copy_from_slice(&d[..a_len]);
            bi.copy_from_slice(&d[a_len..]);
        });
}
