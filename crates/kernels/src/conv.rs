//! 2-D convolution on NCHW `f32` slices: im2col and one `gemm` per image, the forward pass, the
//! input gradient, the weight gradient and the bias gradient.
//!
//! For image n, with K = C_in·k_h·k_w rows and P = H_out·W_out columns:
//! - forward:   y[n] (C_out×P) = W (C_out×K) · col(x[n]) (K×P) + b
//! - ∂L/∂x:     dx[n] = col2im(Wᵀ (K×C_out) · dy[n] (C_out×P))
//! - ∂L/∂W:     dW = Σ_n dy[n] (C_out×P) · col(x[n])ᵀ (P×K)
//! - ∂L/∂b:     db = Σ_n Σ_p dy[n, ·, p]
//!
//! Images are split into one contiguous group per rayon thread; each thread keeps its own
//! scratch buffers (grown once, then reused: no allocation per image) and its own weight-gradient
//! accumulator, and the groups' sums are added in a fixed order, so results do not depend on
//! scheduling. A 1×1, stride-1, unpadded conv skips im2col: the image is its own column matrix.

use std::cell::RefCell;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// The shapes of one conv2d call (groups = 1, dilation = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub in_hw: [usize; 2],
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding before the first row and column.
    pub pad_begin: [usize; 2],
    /// Output height and width.
    pub out_hw: [usize; 2],
}

impl ConvGeometry {
    /// The geometry of x `[N, C_in, H, W]` convolved with w `[C_out, C_in, k_h, k_w]`, or `None`
    /// when the shapes disagree or the output would be empty.
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
    ) -> Option<Self> {
        let [batch, c_in, h, wd] = x;
        let [c_out, w_in, kh, kw] = w;
        if w_in != c_in || stride.contains(&0) || kh == 0 || kw == 0 || c_out == 0 {
            return None;
        }
        let out = |size: usize, k: usize, s: usize, (b, e): (usize, usize)| {
            let padded = size + b + e;
            (padded >= k).then(|| (padded - k) / s + 1)
        };
        let oh = out(h, kh, stride[0], padding[0])?;
        let ow = out(wd, kw, stride[1], padding[1])?;
        if oh == 0 || ow == 0 {
            return None;
        }
        Some(Self {
            batch,
            c_in,
            in_hw: [h, wd],
            c_out,
            kernel: [kh, kw],
            stride,
            pad_begin: [padding[0].0, padding[1].0],
            out_hw: [oh, ow],
        })
    }

    /// Rows of the column matrix: C_in·k_h·k_w.
    pub fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Output pixels per channel: H_out·W_out.
    pub fn p(&self) -> usize {
        self.out_hw[0] * self.out_hw[1]
    }

    /// Elements of one input image.
    pub fn in_len(&self) -> usize {
        self.c_in * self.in_hw[0] * self.in_hw[1]
    }

    /// Elements of one output image.
    pub fn out_len(&self) -> usize {
        self.c_out * self.p()
    }

    /// A 1×1, stride-1, unpadded conv: the input image is already its column matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.pad_begin == [0, 0]
            && self.out_hw == self.in_hw
    }

    /// Multiply-adds ×2 of the forward pass (the backward pass costs twice this).
    pub fn forward_flops(&self) -> f64 {
        2.0 * (self.batch * self.c_out * self.k() * self.p()) as f64
    }
}

thread_local! {
    /// Per-thread scratch: the column matrix and its gradient.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch slice of at least `len` elements from this thread's buffer.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        // Re-entered on this thread (a nested call): use a buffer of its own.
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// The output positions o in 0..n_out whose input index o·s + k − p lies in 0..n_in.
fn valid_range(k: usize, pad: usize, s: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    let lo = if pad > k { (pad - k).div_ceil(s) } else { 0 };
    if n_in + pad < k + 1 {
        return (0, 0);
    }
    let hi = ((n_in - 1 + pad - k) / s + 1).min(n_out);
    (lo.min(hi), hi)
}

/// Unfolds one image `[C_in, H, W]` into `col` `[K, P]` (zeros where the kernel hangs over the
/// padding).
fn im2col(x: &[f32], g: &ConvGeometry, col: &mut [f32]) {
    let [h, w] = g.in_hw;
    let [oh, ow] = g.out_hw;
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.pad_begin;
    let p = g.p();
    for ci in 0..g.c_in {
        let xc = &x[ci * h * w..(ci + 1) * h * w];
        for ky in 0..kh {
            let (oy0, oy1) = valid_range(ky, ph, sh, h, oh);
            for kx in 0..kw {
                let (ox0, ox1) = valid_range(kx, pw, sw, w, ow);
                let row = &mut col[((ci * kh + ky) * kw + kx) * p..][..p];
                row[..oy0 * ow].fill(0.0);
                row[oy1 * ow..].fill(0.0);
                for oy in oy0..oy1 {
                    let iy = oy * sh + ky - ph;
                    let xr = &xc[iy * w..(iy + 1) * w];
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    out[..ox0].fill(0.0);
                    out[ox1..].fill(0.0);
                    if sw == 1 {
                        let ix0 = ox0 + kx - pw;
                        out[ox0..ox1].copy_from_slice(&xr[ix0..ix0 + (ox1 - ox0)]);
                    } else {
                        for ox in ox0..ox1 {
                            out[ox] = xr[ox * sw + kx - pw];
                        }
                    }
                }
            }
        }
    }
}

/// Folds a column-matrix gradient `[K, P]` back onto one image gradient `[C_in, H, W]`, which is
/// overwritten.
fn col2im(col: &[f32], g: &ConvGeometry, dx: &mut [f32]) {
    let [h, w] = g.in_hw;
    let [oh, ow] = g.out_hw;
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.pad_begin;
    let p = g.p();
    dx.fill(0.0);
    for ci in 0..g.c_in {
        let dc = &mut dx[ci * h * w..(ci + 1) * h * w];
        for ky in 0..kh {
            let (oy0, oy1) = valid_range(ky, ph, sh, h, oh);
            for kx in 0..kw {
                let (ox0, ox1) = valid_range(kx, pw, sw, w, ow);
                let row = &col[((ci * kh + ky) * kw + kx) * p..][..p];
                for oy in oy0..oy1 {
                    let iy = oy * sh + ky - ph;
                    let dr = &mut dc[iy * w..(iy + 1) * w];
                    let src = &row[oy * ow..(oy + 1) * ow];
                    if sw == 1 {
                        let ix0 = ox0 + kx - pw;
                        for (d, s) in dr[ix0..ix0 + (ox1 - ox0)].iter_mut().zip(&src[ox0..ox1]) {
                            *d += *s;
                        }
                    } else {
                        for ox in ox0..ox1 {
                            dr[ox * sw + kx - pw] += src[ox];
                        }
                    }
                }
            }
        }
    }
}

/// dst (m×n) = [dst +] lhs (m×k) · rhs (k×n), each given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: [isize; 2],
    rhs: &[f32],
    rhs_strides: [isize; 2],
    parallelism: Parallelism,
) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    let span = |[rs, cs]: [isize; 2], rows: usize, cols: usize| {
        (rows.saturating_sub(1)) as isize * rs + (cols.saturating_sub(1)) as isize * cs + 1
    };
    assert!(
        span(lhs_strides, m, k) as usize <= lhs.len()
            && span(rhs_strides, k, n) as usize <= rhs.len(),
        "gemm: operand too small"
    );
    // SAFETY: the asserts above keep every index the strides reach inside the three slices, the
    // destination does not alias the operands (it is a `&mut`), and the strides are positive.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides[1],
            lhs_strides[0],
            rhs.as_ptr(),
            rhs_strides[1],
            rhs_strides[0],
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// How to share the batch: one contiguous group of images per thread, or, for fewer images than
/// threads, one image at a time with the matmuls themselves parallel.
fn split(batch: usize) -> (usize, Parallelism) {
    let threads = rayon::current_num_threads().max(1);
    if batch >= threads {
        (batch.div_ceil(threads), Parallelism::None)
    } else {
        (batch.max(1), Parallelism::Rayon(threads))
    }
}

/// The forward pass: `out` `[N, C_out, H_out, W_out]` from x `[N, C_in, H, W]`, w
/// `[C_out, C_in, k_h, k_w]` and an optional bias `[C_out]`.
pub fn conv2d_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
    out: &mut [f32],
) {
    let (k, p, co) = (g.k(), g.p(), g.c_out);
    assert_eq!(x.len(), g.batch * g.in_len(), "conv2d: input length");
    assert_eq!(w.len(), co * k, "conv2d: weight length");
    assert_eq!(out.len(), g.batch * g.out_len(), "conv2d: output length");
    if let Some(b) = bias {
        assert_eq!(b.len(), co, "conv2d: bias length");
    }
    let (per_group, par) = split(g.batch);
    let one_image = |xi: &[f32], yi: &mut [f32], col: &mut [f32]| {
        if let Some(b) = bias {
            for (row, &bv) in yi.chunks_exact_mut(p).zip(b) {
                row.fill(bv);
            }
        }
        let cols: &[f32] = if g.is_pointwise() {
            xi
        } else {
            im2col(xi, g, col);
            col
        };
        matmul(
            co,
            p,
            k,
            yi,
            bias.is_some(),
            w,
            [k as isize, 1],
            cols,
            [p as isize, 1],
            par,
        );
    };
    let col_len = if g.is_pointwise() { 0 } else { k * p };
    out.par_chunks_mut(per_group * g.out_len())
        .zip(x.par_chunks(per_group * g.in_len()))
        .for_each(|(ys, xs)| {
            with_scratch(col_len, |col| {
                for (yi, xi) in ys
                    .chunks_exact_mut(g.out_len())
                    .zip(xs.chunks_exact(g.in_len()))
                {
                    one_image(xi, yi, col);
                }
            });
        });
}

/// The gradients asked for by [`conv2d_backward`].
#[derive(Debug, Default)]
pub struct ConvGrads {
    /// ∂L/∂x, `[N, C_in, H, W]`.
    pub x: Option<Vec<f32>>,
    /// ∂L/∂W, `[C_out, C_in, k_h, k_w]`.
    pub weight: Option<Vec<f32>>,
    /// ∂L/∂b, `[C_out]`.
    pub bias: Option<Vec<f32>>,
}

/// Which gradients to compute.
#[derive(Clone, Copy, Debug)]
pub struct Needs {
    /// The input's.
    pub x: bool,
    /// The weight's.
    pub weight: bool,
    /// The bias's.
    pub bias: bool,
}

/// The backward pass: from dy `[N, C_out, H_out, W_out]`, the gradients `needs` asks for.
pub fn conv2d_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &ConvGeometry,
    needs: Needs,
) -> ConvGrads {
    let (k, p, co) = (g.k(), g.p(), g.c_out);
    assert_eq!(
        x.len(),
        g.batch * g.in_len(),
        "conv2d backward: input length"
    );
    assert_eq!(w.len(), co * k, "conv2d backward: weight length");
    assert_eq!(
        dy.len(),
        g.batch * g.out_len(),
        "conv2d backward: gradient length"
    );
    let (per_group, par) = split(g.batch);
    let pointwise = g.is_pointwise();
    let mut dx = if needs.x {
        vec![0.0f32; x.len()]
    } else {
        Vec::new()
    };
    // Scratch per thread: the column matrix (for dW) and its gradient (for dx).
    let col_len = if pointwise { 0 } else { k * p };
    let scratch_len = if needs.weight { col_len } else { 0 } + if needs.x { col_len } else { 0 };
    let group_sums = |xs: &[f32], dys: &[f32], dxs: Option<&mut [f32]>| -> (Vec<f32>, Vec<f32>) {
        let mut dw = if needs.weight {
            vec![0.0f32; co * k]
        } else {
            Vec::new()
        };
        let mut db = if needs.bias {
            vec![0.0f32; co]
        } else {
            Vec::new()
        };
        with_scratch(scratch_len, |scratch| {
            let (col, dcol) = scratch.split_at_mut(if needs.weight { col_len } else { 0 });
            let mut dxs = dxs;
            for (i, (xi, dyi)) in xs
                .chunks_exact(g.in_len())
                .zip(dys.chunks_exact(g.out_len()))
                .enumerate()
            {
                if needs.weight {
                    let cols: &[f32] = if pointwise {
                        xi
                    } else {
                        im2col(xi, g, col);
                        col
                    };
                    // dW (C_out×K) += dy[n] (C_out×P) · colᵀ (P×K)
                    matmul(
                        co,
                        k,
                        p,
                        &mut dw,
                        i > 0,
                        dyi,
                        [p as isize, 1],
                        cols,
                        [1, p as isize],
                        par,
                    );
                }
                if let Some(dxs) = dxs.as_deref_mut() {
                    let dxi = &mut dxs[i * g.in_len()..(i + 1) * g.in_len()];
                    // dcol (K×P) = Wᵀ (K×C_out) · dy[n] (C_out×P)
                    if pointwise {
                        matmul(
                            k,
                            p,
                            co,
                            dxi,
                            false,
                            w,
                            [1, k as isize],
                            dyi,
                            [p as isize, 1],
                            par,
                        );
                    } else {
                        matmul(
                            k,
                            p,
                            co,
                            dcol,
                            false,
                            w,
                            [1, k as isize],
                            dyi,
                            [p as isize, 1],
                            par,
                        );
                        col2im(dcol, g, dxi);
                    }
                }
                if needs.bias {
                    for (acc, row) in db.iter_mut().zip(dyi.chunks_exact(p)) {
                        *acc += row.iter().sum::<f32>();
                    }
                }
            }
        });
        (dw, db)
    };
    let xs = x.par_chunks(per_group * g.in_len());
    let dys = dy.par_chunks(per_group * g.out_len());
    let sums: Vec<(Vec<f32>, Vec<f32>)> = if needs.x {
        dx.par_chunks_mut(per_group * g.in_len())
            .zip(xs.zip(dys))
            .map(|(dxs, (xs, dys))| group_sums(xs, dys, Some(dxs)))
            .collect()
    } else {
        xs.zip(dys)
            .map(|(xs, dys)| group_sums(xs, dys, None))
            .collect()
    };
    // Add the groups' sums in order: the result does not depend on the thread schedule.
    let mut total_w = needs.weight.then(|| vec![0.0f32; co * k]);
    let mut total_b = needs.bias.then(|| vec![0.0f32; co]);
    for (dw, db) in &sums {
        if let Some(t) = total_w.as_mut() {
            t.iter_mut().zip(dw).for_each(|(a, b)| *a += b);
        }
        if let Some(t) = total_b.as_mut() {
            t.iter_mut().zip(db).for_each(|(a, b)| *a += b);
        }
    }
    ConvGrads {
        x: needs.x.then_some(dx),
        weight: total_w,
        bias: total_b,
    }
}
