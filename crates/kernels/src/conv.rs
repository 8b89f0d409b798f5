//! 2-D convolution on NCHW `f32` slices: im2col and one `gemm` per image, the forward pass, the
//! input gradient, the weight gradient and the bias gradient.
//!
//! For image n, with K = C_in·k_h·k_w rows and P = H_out·W_out columns:
//! - forward:   y[n] (C_out×P) = W (C_out×K) · col(x[n]) (K×P) + b
//! - ∂L/∂x:     dx[n] = col2im(Wᵀ (K×C_out) · dy[n] (C_out×P))
//! - ∂L/∂W:     dW = Σ_n dy[n] (C_out×P) · col(x[n])ᵀ (P×K)
//! - ∂L/∂b:     db = Σ_n Σ_p dy[n, ·, p]
//!
//! Stride-1 convs (all of the U-Net's but its down-sampling) skip im2col: each input channel is
//! zero-padded once into a plane, copied k_w times shifted by one column, and each kernel row is
//! one matmul on a view of that (see [`Plane`] and [`fold_image`]); other strides use im2col.
//! Images are split into one contiguous group per rayon thread; each thread keeps its own scratch
//! buffers (grown once, then reused: no allocation per image) and its own weight-gradient
//! accumulator, and the groups' sums are added in a fixed order, so results do not depend on
//! scheduling.

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

pub use crate::direct::{Isa, with_avx2_kernels};
use crate::{direct, helpers};

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
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
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

/// A strided matrix view's extent: the elements from its first to its last, inclusive.
fn span([rs, cs]: [usize; 2], rows: usize, cols: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs + 1
}

/// dst (m×n) = [dst +] lhs (m×k) · rhs (k×n), each a view given by its (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    dst_strides: [usize; 2],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: [usize; 2],
    rhs: &[f32],
    rhs_strides: [usize; 2],
    parallelism: Parallelism,
) {
    assert!(m > 0 && n > 0 && k > 0, "gemm: empty product");
    assert!(
        span(dst_strides, m, n) <= dst.len()
            && span(lhs_strides, m, k) <= lhs.len()
            && span(rhs_strides, k, n) <= rhs.len(),
        "gemm: a view reaches past its slice"
    );
    let st = |s: usize| s as isize;
    // SAFETY: the assert keeps every index the strides reach inside the three slices; the
    // destination does not alias the operands (it is a `&mut`); a destination view whose rows
    // overlap is never passed (each caller's n ≤ its row stride, or its column stride ≥ m).
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            st(dst_strides[1]),
            st(dst_strides[0]),
            accumulate,
            lhs.as_ptr(),
            st(lhs_strides[1]),
            st(lhs_strides[0]),
            rhs.as_ptr(),
            st(rhs_strides[1]),
            st(rhs_strides[0]),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// f32 lanes of the widest SIMD vector gemm uses (AVX-512: 16; a multiple of AVX2's 8).
const SIMD_F32: usize = 16;

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

/// The padded plane of a stride-1 conv: each input channel is copied into an H_p×W_p plane with
/// its zero padding around it, so that the input under kernel tap (k_y, k_x) for output pixel
/// (o_y, o_x) sits at o_y·W_p + o_x + (k_y·W_p + k_x): one shifted, contiguous view per tap. The
/// output is computed on rows of width W_p (its last W_p − W_out columns are junk, and the
/// gradients put zeros there), so each tap is one matmul over P' = H_out·W_p columns, with no
/// im2col and no col2im.
#[derive(Clone, Copy, Debug)]
struct Plane {
    /// Padded height and width.
    hp: usize,
    wp: usize,
    /// Columns of the wide output: H_out·W_p.
    wide: usize,
}

impl Plane {
    fn new(g: &ConvGeometry) -> Self {
        let hp = g.out_hw[0] + g.kernel[0] - 1;
        let wp = g.out_hw[1] + g.kernel[1] - 1;
        Self {
            hp,
            wp,
            wide: g.out_hw[0] * wp,
        }
    }

    fn len(&self) -> usize {
        self.hp * self.wp
    }
}

/// What the forward pass adds to the convolution: y = conv(x) + bias + residual, in the same
/// pass that writes y (a ResBlock's time embedding and its skip connection, without a separate
/// pass over the activations for each).
#[derive(Clone, Copy, Debug, Default)]
pub struct Addends<'a> {
    /// `[C_out]` (one bias for every image) or `[N, C_out]` (one per image).
    pub bias: Option<&'a [f32]>,
    /// `[N, C_out, H_out, W_out]`, added to the output.
    pub residual: Option<&'a [f32]>,
}

impl<'a> Addends<'a> {
    /// Just a bias shared by every image.
    pub fn bias(bias: Option<&'a [f32]>) -> Self {
        Self {
            bias,
            residual: None,
        }
    }

    /// Image n's bias row (`[C_out]`), if any.
    fn bias_of(&self, g: &ConvGeometry, n: usize) -> Option<&'a [f32]> {
        self.bias.map(|b| {
            if b.len() == g.c_out {
                b
            } else {
                &b[n * g.c_out..(n + 1) * g.c_out]
            }
        })
    }

    /// Image n's residual (`[C_out, H_out, W_out]`), if any.
    fn residual_of(&self, g: &ConvGeometry, n: usize) -> Option<&'a [f32]> {
        self.residual
            .map(|r| &r[n * g.out_len()..(n + 1) * g.out_len()])
    }
}

/// The forward pass: `out` `[N, C_out, H_out, W_out]` from x `[N, C_in, H, W]`, w
/// `[C_out, C_in, k_h, k_w]` and the [`Addends`].
pub fn conv2d_forward(x: &[f32], w: &[f32], add: Addends, g: &ConvGeometry, out: &mut [f32]) {
    // SAFETY: the forward pass writes only initialised values.
    conv2d_forward_uninit(x, w, add, g, unsafe { crate::as_uninit(out) });
}

/// As [`conv2d_forward`], into a buffer that need not be initialised: it writes every element
/// (so a caller can skip zeroing an activation-sized buffer that is overwritten anyway).
pub fn conv2d_forward_uninit(
    x: &[f32],
    w: &[f32],
    add: Addends,
    g: &ConvGeometry,
    out: &mut [MaybeUninit<f32>],
) {
    assert_eq!(x.len(), g.batch * g.in_len(), "conv2d: input length");
    assert_eq!(w.len(), g.c_out * g.k(), "conv2d: weight length");
    assert_eq!(out.len(), g.batch * g.out_len(), "conv2d: output length");
    if let Some(b) = add.bias {
        assert!(
            b.len() == g.c_out || b.len() == g.batch * g.c_out,
            "conv2d: bias length"
        );
    }
    if let Some(r) = add.residual {
        assert_eq!(r.len(), out.len(), "conv2d: residual length");
    }
    if g.stride == [1, 1] {
        forward_shifted(x, w, add, g, out);
    } else {
        forward_im2col(x, w, add, g, out);
    }
}

/// Stride 1: per image, one matmul per kernel row into the wide output (see [`Plane`] and
/// [`fold_image`]).
fn forward_shifted(
    x: &[f32],
    w: &[f32],
    add: Addends,
    g: &ConvGeometry,
    out: &mut [MaybeUninit<f32>],
) {
    let (co, ci) = (g.c_out, g.c_in);
    let [kh, kw] = g.kernel;
    let pl = Plane::new(g);
    let fold = kw * ci;
    // The matmuls run over `cols` ≥ P' columns, a whole number of SIMD vectors: gemm copies
    // (packs) an operand whose row count is not (here x''ᵀ, P' rows), and at 28×28 P' = 840
    // is not. The extra columns read past the planes into the buffer's tail and land in junk
    // columns of y' (each output column depends only on its own input column).
    let cols = pl.wide.next_multiple_of(SIMD_F32);
    let direct = direct_applies(g);
    // The direct kernels read the padded planes only (plus k_w − 1 and the rounding past the
    // last one); the matmuls read k_w shifted copies of them.
    let xc_len = if direct.is_some() {
        ci * pl.len() + kw + (cols - pl.wide)
    } else {
        fold * pl.len() + (cols - pl.wide)
    };
    // The direct kernels' packed weights and each term's offset in the planes; or
    // W_row[k_y] (C_out × k_w·C_in), rows of the folded weights, for the matmuls.
    let (wr, offs) = if direct.is_some() {
        let k = g.k();
        let packed = direct::pack_rows(co, k, |o, kk| w[o * k + kk]);
        (packed, tap_offsets(ci, pl.len(), g.kernel, pl.wp))
    } else {
        (weight_rows(w, g), Vec::new())
    };
    // Helpers outside rayon (the page's Web Workers: see `helpers`) take the batch's last
    // images, padded here and copied to them; this thread computes the first ones meanwhile.
    let shared = direct
        .and_then(|_| helpers::split(g.batch, co * offs.len() * pl.wide >= helpers::MIN_CONV_MACS));
    let own = shared.as_ref().map_or(g.batch, |s| s.own);
    // Each part's padded planes, kept for the tasks this thread takes back.
    let mut planes = Vec::new();
    for (p, s) in shared
        .iter()
        .flat_map(|s| s.parts.iter().map(move |p| (p, s)))
    {
        let mut xc = vec![0.0f32; p.images * xc_len];
        for (j, slot) in xc.chunks_exact_mut(xc_len).enumerate() {
            pad_image(&x[(p.first + j) * g.in_len()..][..g.in_len()], g, &pl, slot);
        }
        let share = helpers::Share {
            xc: &xc,
            xc_len,
            images: p.images,
            offs: &offs,
            w: &wr,
            rows: co,
            cols,
        };
        s.helpers.start(p.helper, &share);
        planes.push(xc);
    }
    let (out, helped) = out.split_at_mut(own * g.out_len());
    let x = &x[..own * g.in_len()];
    let (per_group, par) = split(own);
    out.par_chunks_mut(per_group * g.out_len())
        .zip(x.par_chunks(per_group * g.in_len()))
        .enumerate()
        .for_each(|(group, (ys, xs))| {
            with_scratch(xc_len + co * cols, |scratch| {
                let (xc, yp) = scratch.split_at_mut(xc_len);
                // The padding, zeroed once: each image writes only its own pixels.
                xc.fill(0.0);
                for (j, (yi, xi)) in ys
                    .chunks_exact_mut(g.out_len())
                    .zip(xs.chunks_exact(g.in_len()))
                    .enumerate()
                {
                    let n = group * per_group + j;
                    if let Some(isa) = direct {
                        pad_image(xi, g, &pl, xc);
                        // y'[o][q] = Σ_{c, k_y, k_x} W[o, c, k_y, k_x] · x'[c][q + k_y·W_p + k_x]
                        direct::conv_wide(isa, xc, &offs, &wr, co, yp, cols, cols);
                    } else {
                        fold_image(xi, g, &pl, xc);
                        // y' (C_out×P') = Σ_{k_y} W_row[k_y] (C_out×k_w·C_in) · x''[k_y] (k_w·C_in×P')
                        for ky in 0..kh {
                            matmul(
                                [co, cols, fold],
                                yp,
                                [cols, 1],
                                ky > 0,
                                &wr[ky * co * fold..],
                                [fold, 1],
                                &xc[ky * pl.wp..],
                                [pl.len(), 1],
                                par,
                            );
                        }
                    }
                    // Drop the junk columns; add the bias and the residual.
                    finish_image(yi, yp, n, add, g, &pl, cols);
                }
            });
        });
    if let (Some(s), Some(isa)) = (&shared, direct) {
        let out_len = g.out_len();
        for (p, xc) in s.parts.iter().zip(planes) {
            // The tasks of the part that the helper has not begun: computed here, rather than
            // waiting (the same kernel on the same planes and weight rows: the same sums), into
            // `mine`, and copied over the helper's outputs once they are in.
            let k = offs.len();
            let mut yp = vec![0.0f32; p.images * co * cols];
            let mut mine = Vec::new();
            let mut claimed = Vec::new();
            while let Some(t) = s.helpers.claim(p.helper) {
                let task = helpers::Task::of(t, co);
                if mine.is_empty() {
                    mine = vec![0.0f32; p.images * co * cols];
                }
                let at = (task.image * co + task.row) * cols;
                direct::conv_wide(
                    isa,
                    &xc[task.image * xc_len..][..xc_len],
                    &offs,
                    &wr[task.row * k..],
                    task.rows,
                    &mut mine[at..][..task.rows * cols],
                    cols,
                    cols,
                );
                claimed.push(at..at + task.rows * cols);
            }
            s.helpers.finish(p.helper, &mut yp);
            for range in claimed {
                yp[range.clone()].copy_from_slice(&mine[range]);
            }
            for (j, ypi) in yp.chunks_exact(co * cols).enumerate() {
                let yi = &mut helped[(p.first - own + j) * out_len..][..out_len];
                finish_image(yi, ypi, p.first + j, add, g, &pl, cols);
            }
        }
    }
}

/// Image n's wide output `yp` (C_out rows of `cols`) into its place in `yi`: the junk columns
/// dropped, the bias and the residual added.
fn finish_image(
    yi: &mut [MaybeUninit<f32>],
    yp: &[f32],
    n: usize,
    add: Addends,
    g: &ConvGeometry,
    pl: &Plane,
    cols: usize,
) {
    let [oh, ow] = g.out_hw;
    let (bias, residual) = (add.bias_of(g, n), add.residual_of(g, n));
    for (c, (yc, pc)) in yi
        .chunks_exact_mut(oh * ow)
        .zip(yp.chunks_exact(cols))
        .enumerate()
    {
        let b = bias.map_or(0.0, |b| b[c]);
        match residual {
            Some(r) => {
                let rc = &r[c * oh * ow..(c + 1) * oh * ow];
                for ((row, prow), rrow) in yc
                    .chunks_exact_mut(ow)
                    .zip(pc.chunks_exact(pl.wp))
                    .zip(rc.chunks_exact(ow))
                {
                    for ((o, &v), &rv) in row.iter_mut().zip(prow).zip(rrow) {
                        o.write(v + b + rv);
                    }
                }
            }
            None => {
                for (row, prow) in yc.chunks_exact_mut(ow).zip(pc.chunks_exact(pl.wp)) {
                    for (o, &v) in row.iter_mut().zip(prow) {
                        o.write(v + b);
                    }
                }
            }
        }
    }
}

/// The kernel's column taps folded into the matmul's inner dimension: row (k_x, c) of `xc`
/// (`k_w·C_in` rows of `H_p·W_p`) is the zero-padded plane of input channel c shifted left by
/// k_x, so that kernel row k_y is one matmul with K = k_w·C_in (instead of k_w matmuls with
/// K = C_in, each adding into the whole output) on the view of `xc` that starts at k_y·W_p.
///
/// The first block (k_x = 0) is the padded image itself, and block k_x is that block shifted
/// left by k_x: one contiguous copy per tap column (where a shift carries a value across the
/// edge of a plane, it feeds only junk columns). Only the image's own pixels are written into
/// the first block: its padding stays as the caller zeroed it once for all images of a call.
fn fold_image(x: &[f32], g: &ConvGeometry, pl: &Plane, xc: &mut [f32]) {
    pad_image(x, g, pl, xc);
    let block = g.c_in * pl.len();
    for kx in 1..g.kernel[1] {
        xc.copy_within(kx..block, kx * block);
    }
}

/// The image's pixels into its zero-padded planes (`C_in` planes of `H_p·W_p`); the padding is
/// left as the caller zeroed it.
fn pad_image(x: &[f32], g: &ConvGeometry, pl: &Plane, xc: &mut [f32]) {
    let [h, w] = g.in_hw;
    let [pt, pw] = g.pad_begin;
    // Image columns inside the padded plane (padding that cuts the image is never read).
    let n = w.min(pl.wp.saturating_sub(pw));
    for (plane, pc) in x.chunks_exact(h * w).zip(xc.chunks_exact_mut(pl.len())) {
        for (iy, src) in plane.chunks_exact(w).enumerate() {
            let py = iy + pt;
            if py >= pl.hp {
                break;
            }
            pc[py * pl.wp + pw..][..n].copy_from_slice(&src[..n]);
        }
    }
}

/// Where term k = (c, k_y, k_x) of a direct conv reads, relative to the output position:
/// c·L + k_y·W_p + k_x, for `channels` planes of length L.
fn tap_offsets(channels: usize, plane: usize, [kh, kw]: [usize; 2], wp: usize) -> Vec<usize> {
    let mut offs = Vec::with_capacity(channels * kh * kw);
    for c in 0..channels {
        for ky in 0..kh {
            for kx in 0..kw {
                offs.push(c * plane + ky * wp + kx);
            }
        }
    }
    offs
}

thread_local! {
    static GEMM_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the stride-1 convs on `gemm` even where the direct kernels would run (the
/// reference they are tested against, and the path of CPUs without AVX2).
pub fn with_gemm_kernels<R>(f: impl FnOnce() -> R) -> R {
    crate::with_flag(&GEMM_ONLY, f)
}

/// The instruction set a stride-1 conv of this geometry runs the direct kernels with, if it does:
/// on a CPU with AVX2 + FMA (or AVX-512), with at least one image per thread (fewer images run on `gemm`, whose matmuls share the
/// threads), and not inside [`with_gemm_kernels`].
fn direct_applies(g: &ConvGeometry) -> Option<direct::Isa> {
    if g.stride != [1, 1] || g.batch < rayon::current_num_threads() || GEMM_ONLY.with(Cell::get) {
        return None;
    }
    direct::isa()
}

/// The weights `[C_out, C_in, k_h, k_w]` as k_h row blocks `[C_out][k_w·C_in]`, (k_x, c) order.
fn weight_rows(w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (co, ci) = (g.c_out, g.c_in);
    let [kh, kw] = g.kernel;
    let mut wr = vec![0.0f32; w.len()];
    for o in 0..co {
        for c in 0..ci {
            for ky in 0..kh {
                for kx in 0..kw {
                    wr[(ky * co + o) * kw * ci + kx * ci + c] =
                        w[((o * ci + c) * kh + ky) * kw + kx];
                }
            }
        }
    }
    wr
}

/// The transposed weights as k_h row blocks `[C_in][k_w·C_out]`, (k_x, o) order: the input
/// gradient's left operand.
fn weight_rows_t(w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (co, ci) = (g.c_out, g.c_in);
    let [kh, kw] = g.kernel;
    let mut wt = vec![0.0f32; w.len()];
    for o in 0..co {
        for c in 0..ci {
            for ky in 0..kh {
                for kx in 0..kw {
                    wt[(ky * ci + c) * kw * co + kx * co + o] =
                        w[((o * ci + c) * kh + ky) * kw + kx];
                }
            }
        }
    }
    wt
}

/// Any stride: per image, im2col and one matmul.
fn forward_im2col(
    x: &[f32],
    w: &[f32],
    add: Addends,
    g: &ConvGeometry,
    out: &mut [MaybeUninit<f32>],
) {
    let (k, p, co) = (g.k(), g.p(), g.c_out);
    let (per_group, par) = split(g.batch);
    out.par_chunks_mut(per_group * g.out_len())
        .zip(x.par_chunks(per_group * g.in_len()))
        .enumerate()
        .for_each(|(group, (ys, xs))| {
            with_scratch(k * p, |col| {
                for (j, (yi, xi)) in ys
                    .chunks_exact_mut(g.out_len())
                    .zip(xs.chunks_exact(g.in_len()))
                    .enumerate()
                {
                    let n = group * per_group + j;
                    let (bias, residual) = (add.bias_of(g, n), add.residual_of(g, n));
                    // The output starts as residual + bias (or zeros) and the matmul adds into
                    // it.
                    for (c, row) in yi.chunks_exact_mut(p).enumerate() {
                        let bv = bias.map_or(0.0, |b| b[c]);
                        match residual {
                            Some(r) => {
                                for (o, &rv) in row.iter_mut().zip(&r[c * p..(c + 1) * p]) {
                                    o.write(rv + bv);
                                }
                            }
                            None => row.iter_mut().for_each(|o| {
                                o.write(bv);
                            }),
                        }
                    }
                    // SAFETY: every element was written just above; same layout.
                    let yi = unsafe { &mut *(std::ptr::from_mut(yi) as *mut [f32]) };
                    im2col(xi, g, col);
                    // y (C_out×P) = W (C_out×K) · col (K×P)
                    matmul([co, p, k], yi, [p, 1], true, w, [k, 1], col, [p, 1], par);
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

/// One thread's share of the weight and bias gradients (its group of images).
struct GroupSums {
    /// Weight gradient in the layout of the path that made it.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl GroupSums {
    /// Zeros for the gradients `needs` asks for (`weight_len` values of the weight's, `c_out`
    /// of the bias's), empty for the others.
    fn zeroed(needs: Needs, weight_len: usize, c_out: usize) -> Self {
        let zeros = |wanted: bool, n: usize| if wanted { vec![0.0f32; n] } else { Vec::new() };
        Self {
            weight: zeros(needs.weight, weight_len),
            bias: zeros(needs.bias, c_out),
        }
    }
}

/// The backward pass: from dy `[N, C_out, H_out, W_out]`, the gradients `needs` asks for.
pub fn conv2d_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &ConvGeometry,
    needs: Needs,
) -> ConvGrads {
    assert_eq!(
        x.len(),
        g.batch * g.in_len(),
        "conv2d backward: input length"
    );
    assert_eq!(w.len(), g.c_out * g.k(), "conv2d backward: weight length");
    assert_eq!(
        dy.len(),
        g.batch * g.out_len(),
        "conv2d backward: gradient length"
    );
    let (per_group, _) = split(g.batch);
    let direct = direct_applies(g);
    // Stride 1 on gemm: the weight gradient comes in [tap][C_in][C_out] order.
    let shifted = g.stride == [1, 1] && direct.is_none();
    // ∂L/∂x, written by the groups into memory that is not zeroed first: the stride-1 paths
    // write every element, the im2col path zeroes each image before adding into it.
    let dx_len = if needs.x { x.len() } else { 0 };
    let mut dx = Vec::<f32>::with_capacity(dx_len);
    // The input gradient's folded, transposed weights (stride 1 on gemm only).
    let wt = if shifted && needs.x {
        weight_rows_t(w, g)
    } else {
        Vec::new()
    };
    let plan = direct.map(|isa| DirectBackward::new(isa, w, g, needs, per_group));
    let group = |xs: &[f32], dys: &[f32], dxs: Option<&mut [MaybeUninit<f32>]>| {
        if let Some(plan) = &plan {
            backward_direct_group(xs, plan, dys, dxs, g, needs)
        } else if shifted {
            backward_shifted_group(xs, &wt, dys, dxs, g, needs)
        } else {
            backward_im2col_group(xs, w, dys, dxs, g, needs)
        }
    };
    let xs = x.par_chunks(per_group * g.in_len());
    let dys = dy.par_chunks(per_group * g.out_len());
    let sums: Vec<GroupSums> = if needs.x {
        let sums = dx.spare_capacity_mut()[..dx_len]
            .par_chunks_mut(per_group * g.in_len())
            .zip(xs.zip(dys))
            .map(|(dxs, (xs, dys))| group(xs, dys, Some(dxs)))
            .collect();
        // SAFETY: each group wrote every element of its images' ∂L/∂x (see the group functions).
        unsafe { dx.set_len(dx_len) };
        sums
    } else {
        xs.zip(dys).map(|(xs, dys)| group(xs, dys, None)).collect()
    };
    // Add the groups' sums in order: the result does not depend on the thread schedule.
    let (co, ci, taps) = (g.c_out, g.c_in, g.kernel[0] * g.kernel[1]);
    let weight = needs.weight.then(|| {
        let mut total = vec![0.0f32; co * g.k()];
        for s in &sums {
            if shifted {
                // [tap][C_in][C_out] → [C_out][C_in][tap]
                for (tap, block) in s.weight.chunks_exact(ci * co).enumerate() {
                    for (i, row) in block.chunks_exact(co).enumerate() {
                        for (c, &v) in row.iter().enumerate() {
                            total[(c * ci + i) * taps + tap] += v;
                        }
                    }
                }
            } else {
                total.iter_mut().zip(&s.weight).for_each(|(a, b)| *a += b);
            }
        }
        total
    });
    let bias = needs.bias.then(|| {
        let mut total = vec![0.0f32; co];
        for s in &sums {
            total.iter_mut().zip(&s.bias).for_each(|(a, b)| *a += b);
        }
        total
    });
    ConvGrads {
        x: needs.x.then_some(dx),
        weight,
        bias,
    }
}

/// The gradient of a per-image bias `[N, C_out]`: Σ_p dy[n, c, p] for each image and channel.
pub fn bias_grad_per_image(dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert_eq!(dy.len(), g.batch * g.out_len(), "conv2d: gradient length");
    let mut db = vec![0.0f32; g.batch * g.c_out];
    db.par_chunks_mut(g.c_out)
        .zip(dy.par_chunks(g.out_len()))
        .for_each(|(dbi, dyi)| add_bias_grad(dyi, g.p(), dbi));
    db
}

/// Adds Σ_p dy[c, p] to `db[c]`.
fn add_bias_grad(dyi: &[f32], p: usize, db: &mut [f32]) {
    for (acc, row) in db.iter_mut().zip(dyi.chunks_exact(p)) {
        *acc += crate::simd::sum(row) as f32;
    }
}

/// Stride 1, one group of images, with the kernel's column taps folded into the matmuls' inner
/// dimension (see [`fold_image`]). The weight gradient is one matmul per kernel row,
/// dW_row[k_y] (C_out × k_w·C_in) += dy' (C_out×P') · x''[k_y]ᵀ (P'×k_w·C_in), accumulated in a
/// `[tap][C_in][C_out]` buffer (so neither operand needs repacking). The input gradient is
/// dx'[c, q] = Σ_{k_y, k_x, o} W[o, c, k_y, k_x] · dy'[o, q − k_y·W_p − k_x], again one matmul
/// per kernel row: Wᵀ_row[k_y] (C_in × k_w·C_out) times the view at (k_h − 1 − k_y)·W_p of dy''
/// (row (k_x, o) is dy' of channel o shifted right by (k_h − 1)·W_p + k_x). dy' is dy on rows of
/// width W_p, zeros in the junk columns.
fn backward_shifted_group(
    xs: &[f32],
    wt: &[f32],
    dys: &[f32],
    mut dxs: Option<&mut [MaybeUninit<f32>]>,
    g: &ConvGeometry,
    needs: Needs,
) -> GroupSums {
    let (co, ci) = (g.c_out, g.c_in);
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.out_hw;
    let h = g.in_hw[0];
    let pt = g.pad_begin[0];
    let pl = Plane::new(g);
    let taps = kh * kw;
    let par = Parallelism::None;
    let GroupSums {
        weight: mut dw,
        bias: mut db,
    } = GroupSums::zeroed(needs, taps * ci * co, co);
    let (fold_x, fold_y) = (kw * ci, kw * co);
    // dy''s rows: the plane, shifted right by up to (k_h − 1)·W_p + k_w − 1.
    let row_len = pl.len() + (kh - 1) * pl.wp;
    // The padded rows that hold image rows, whose input gradient is wanted.
    let rows = h.min(pl.hp.saturating_sub(pt));
    let (q0, qn) = (pt * pl.wp, rows * pl.wp);
    // As in the forward pass, the input gradient's matmuls run over a whole number of SIMD
    // vectors of columns (so gemm does not copy its operand dy''), into planes of dx' long
    // enough to take the extra junk columns, reading into the tail of dy''.
    let cols = qn.next_multiple_of(SIMD_F32);
    let dx_stride = pl.len().max(q0 + cols);
    // Scratch: x'' (for dW), dyᵀ' [P'][C_out] (for dW), dy'' and dx' (for dx).
    let lens = [
        if needs.weight { fold_x * pl.len() } else { 0 },
        if needs.weight { pl.wide * co } else { 0 },
        if needs.x {
            fold_y * row_len + (cols - qn)
        } else {
            0
        },
        if needs.x { ci * dx_stride } else { 0 },
    ];
    with_scratch(lens.iter().sum(), |scratch| {
        let (xc, rest) = scratch.split_at_mut(lens[0]);
        let (dyt, rest) = rest.split_at_mut(lens[1]);
        let (dyc, dxp) = rest.split_at_mut(lens[2]);
        // x'''s padding, dyᵀ''s and dy'''s junk, zeroed once for the group: each image writes
        // the same positions (see `fold_image`).
        xc.fill(0.0);
        dyt.fill(0.0);
        dyc.fill(0.0);
        for (i, (xi, dyi)) in xs
            .chunks_exact(g.in_len())
            .zip(dys.chunks_exact(g.out_len()))
            .enumerate()
        {
            if needs.weight {
                fold_image(xi, g, &pl, xc);
                // dyᵀ' [P'][C_out], zeros in the junk columns.
                transpose_into_wide(dyi, co, [oh, ow], pl.wp, dyt);
                for ky in 0..kh {
                    // dW_row[k_y] (C_out × k_w·C_in) += dy' (C_out×P') · x''[k_y]ᵀ, stored
                    // column-major (C_out contiguous): the [tap][C_in][C_out] layout.
                    matmul(
                        [co, fold_x, pl.wide],
                        &mut dw[ky * fold_x * co..],
                        [1, co],
                        i > 0,
                        dyt,
                        [1, co],
                        &xc[ky * pl.wp..],
                        [1, pl.len()],
                        par,
                    );
                }
            }
            if let Some(dxs) = dxs.as_deref_mut() {
                let dxi = &mut dxs[i * g.in_len()..(i + 1) * g.in_len()];
                if qn == 0 {
                    dxi.fill(MaybeUninit::new(0.0));
                } else {
                    // dy'' row (k_x, o) = dy' of channel o shifted right by (k_h − 1)·W_p + k_x.
                    // (Row by row: one long copy shifted by k_x elements, as `fold_image` makes
                    // x'', measured slower here, its source and destination a float apart.)
                    for (r, row) in dyc.chunks_exact_mut(row_len).enumerate() {
                        let (kx, o) = (r / co, r % co);
                        let base = (kh - 1) * pl.wp + kx;
                        let dc = &dyi[o * oh * ow..(o + 1) * oh * ow];
                        for (oy, src) in dc.chunks_exact(ow).enumerate() {
                            row[base + oy * pl.wp..][..ow].copy_from_slice(src);
                        }
                    }
                    for ky in 0..kh {
                        // dx' (C_in × rows·W_p) [+]= Wᵀ_row[k_y] · dy''[view at (k_h−1−k_y)·W_p]
                        matmul(
                            [ci, cols, fold_y],
                            &mut dxp[q0..],
                            [dx_stride, 1],
                            ky > 0,
                            &wt[ky * ci * fold_y..],
                            [fold_y, 1],
                            &dyc[(kh - 1 - ky) * pl.wp + q0..],
                            [row_len, 1],
                            par,
                        );
                    }
                    // Cut the image out of its padded planes.
                    cut_image(dxp, dx_stride, g, &pl, dxi);
                }
            }
            if needs.bias {
                add_bias_grad(dyi, oh * ow, &mut db);
            }
        }
    });
    GroupSums {
        weight: dw,
        bias: db,
    }
}

/// What the direct backward pass shares between its groups of images: the planes' geometry,
/// the input gradient's packed weights and the terms' offsets.
struct DirectBackward {
    /// The instruction set of the kernels.
    isa: direct::Isa,
    pl: Plane,
    /// Where dy' starts in its plane: at least (k_h − 1)·W_p + k_w − 1, so that the input
    /// gradient's reads q + k_y·W_p + k_x (flipped taps) never go below the plane, and a whole
    /// number of vectors, so that the weight gradient's reads of dy' are aligned.
    lead: usize,
    /// Length of one plane of dy'' (see [`backward_direct_group`]), whole vectors.
    dy_plane: usize,
    /// One image's x' (the padded planes, and the tail that reads past the last one), whole
    /// vectors.
    x_len: usize,
    /// Positions of the weight gradient's sum: the wide output, rounded up to whole vectors.
    cols_w: usize,
    /// First position and count (whole vectors) of the input gradient's wide rows.
    q0: usize,
    cols_x: usize,
    /// Row stride of dx'.
    dx_stride: usize,
    /// Images whose x' and dy'' are built together, so that the weight gradient's tiles sum
    /// over all of them before reducing their accumulators (about 512 KiB of them: in L2).
    chunk: usize,
    /// Wᵀ flipped, packed: row c, term (o, k_y, k_x) = W[o, c, k_h − 1 − k_y, k_w − 1 − k_x].
    packed_t: Vec<f32>,
    /// Offsets of the terms in x' (weight gradient) and in dy'' (input gradient).
    offs_x: Vec<usize>,
    offs_dy: Vec<usize>,
}

impl DirectBackward {
    fn new(isa: direct::Isa, w: &[f32], g: &ConvGeometry, needs: Needs, per_group: usize) -> Self {
        let (co, ci) = (g.c_out, g.c_in);
        let [kh, kw] = g.kernel;
        let taps = kh * kw;
        let pl = Plane::new(g);
        let shift = (kh - 1) * pl.wp + kw - 1;
        let lead = shift.next_multiple_of(SIMD_F32);
        let cols_w = pl.wide.next_multiple_of(SIMD_F32);
        let rows = g.in_hw[0].min(pl.hp.saturating_sub(g.pad_begin[0]));
        let q0 = g.pad_begin[0] * pl.wp;
        let cols_x = (rows * pl.wp).next_multiple_of(SIMD_F32);
        let dy_plane = (lead + cols_w.max(q0 + cols_x)).next_multiple_of(SIMD_F32);
        let x_len = (ci * pl.len() + kw + (cols_w - pl.wide)).next_multiple_of(SIMD_F32);
        let packed_t = if needs.x {
            direct::pack_rows(ci, co * taps, |c, k| {
                let (o, t) = (k / taps, k % taps);
                let (ky, kx) = (kh - 1 - t / kw, kw - 1 - t % kw);
                w[((o * ci + c) * kh + ky) * kw + kx]
            })
        } else {
            Vec::new()
        };
        let mut offs_dy = tap_offsets(co, dy_plane, g.kernel, pl.wp);
        offs_dy.iter_mut().for_each(|o| *o += lead - shift);
        let image_bytes = 4 * (x_len + co * dy_plane);
        Self {
            isa,
            pl,
            lead,
            dy_plane,
            x_len,
            cols_w,
            q0,
            cols_x,
            dx_stride: pl.len().max(q0 + cols_x),
            chunk: (512 * 1024 / image_bytes).clamp(1, per_group.max(1)),
            packed_t,
            offs_x: tap_offsets(ci, pl.len(), g.kernel, pl.wp),
            offs_dy,
        }
    }
}

/// The part of `buf` that starts on a 64-byte boundary (`buf` must have 15 spare values).
fn aligned(buf: &mut [f32]) -> &mut [f32] {
    let skip = buf.as_ptr().align_offset(64).min(SIMD_F32 - 1);
    &mut buf[skip..]
}

/// Stride 1 on the direct kernels, one group of images, taken `chunk` images at a time. dy''
/// holds each channel of dy on rows of width W_p (zeros in the junk columns and around),
/// starting `lead` into its plane. The weight gradient is
/// dW[o][c, k_y, k_x] += Σ_q dy'[o][q] · x'[c][q + k_y·W_p + k_x] (x' the padded planes, as in
/// the forward pass), already in `[C_out, C_in, k_h, k_w]` order; the input gradient
/// dx'[c][q] = Σ_{o, k_y, k_x} W[o, c, k_y, k_x] · dy'[o][q − k_y·W_p − k_x] is the forward
/// kernel with the weights transposed and flipped, reading dy''.
fn backward_direct_group(
    xs: &[f32],
    plan: &DirectBackward,
    dys: &[f32],
    mut dxs: Option<&mut [MaybeUninit<f32>]>,
    g: &ConvGeometry,
    needs: Needs,
) -> GroupSums {
    let (co, ci) = (g.c_out, g.c_in);
    let [oh, ow] = g.out_hw;
    let pl = plan.pl;
    let k = g.k();
    let GroupSums {
        weight: mut dw,
        bias: mut db,
    } = GroupSums::zeroed(needs, co * k, co);
    let dy_len = co * plan.dy_plane;
    let lens = [
        if needs.weight {
            plan.chunk * plan.x_len
        } else {
            0
        },
        if needs.weight || needs.x {
            plan.chunk * dy_len
        } else {
            0
        },
        if needs.x { ci * plan.dx_stride } else { 0 },
    ];
    with_scratch(lens.iter().sum::<usize>() + SIMD_F32, |scratch| {
        let scratch = aligned(scratch);
        let (xc, rest) = scratch.split_at_mut(lens[0]);
        let (dyc, rest) = rest.split_at_mut(lens[1]);
        let dxp = &mut rest[..lens[2]];
        // The padding and junk columns, zeroed once for the group: each image writes the same
        // positions.
        xc.fill(0.0);
        dyc.fill(0.0);
        let images = xs
            .chunks_exact(g.in_len())
            .zip(dys.chunks_exact(g.out_len()));
        let mut done = 0;
        for run in images.collect::<Vec<_>>().chunks(plan.chunk) {
            for (slot, &(xi, dyi)) in run.iter().enumerate() {
                if needs.weight || needs.x {
                    let d = &mut dyc[slot * dy_len..(slot + 1) * dy_len];
                    for (plane, dc) in d
                        .chunks_exact_mut(plan.dy_plane)
                        .zip(dyi.chunks_exact(oh * ow))
                    {
                        for (oy, src) in dc.chunks_exact(ow).enumerate() {
                            plane[plan.lead + oy * pl.wp..][..ow].copy_from_slice(src);
                        }
                    }
                }
                if needs.weight {
                    pad_image(xi, g, &pl, &mut xc[slot * plan.x_len..]);
                }
                if needs.bias {
                    add_bias_grad(dyi, oh * ow, &mut db);
                }
            }
            if needs.weight {
                direct::wgrad_wide(
                    plan.isa,
                    direct::Images {
                        data: &dyc[plan.lead..],
                        stride: dy_len,
                    },
                    plan.dy_plane,
                    co,
                    direct::Images {
                        data: xc,
                        stride: plan.x_len,
                    },
                    &plan.offs_x,
                    plan.cols_w,
                    run.len(),
                    &mut dw,
                    k,
                );
            }
            if let Some(dxs) = dxs.as_deref_mut() {
                for slot in 0..run.len() {
                    let i = done + slot;
                    let dxi = &mut dxs[i * g.in_len()..(i + 1) * g.in_len()];
                    if plan.cols_x == 0 {
                        dxi.fill(MaybeUninit::new(0.0));
                        continue;
                    }
                    direct::conv_wide(
                        plan.isa,
                        &dyc[slot * dy_len + plan.q0..(slot + 1) * dy_len],
                        &plan.offs_dy,
                        &plan.packed_t,
                        ci,
                        &mut dxp[plan.q0..],
                        plan.dx_stride,
                        plan.cols_x,
                    );
                    cut_image(dxp, plan.dx_stride, g, &pl, dxi);
                }
            }
            done += run.len();
        }
    });
    GroupSums {
        weight: dw,
        bias: db,
    }
}

/// The image `[C_in, H, W]` cut out of its padded planes (row stride `stride`), zeros where the
/// planes do not reach.
fn cut_image(
    planes: &[f32],
    stride: usize,
    g: &ConvGeometry,
    pl: &Plane,
    dxi: &mut [MaybeUninit<f32>],
) {
    let [h, wd] = g.in_hw;
    let [pt, pw] = g.pad_begin;
    let zero = MaybeUninit::new(0.0);
    for (dc, pc) in dxi.chunks_exact_mut(h * wd).zip(planes.chunks(stride)) {
        for (iy, row) in dc.chunks_exact_mut(wd).enumerate() {
            let py = iy + pt;
            if py < pl.hp {
                let n = wd.min(pl.wp.saturating_sub(pw));
                for (d, &v) in row[..n].iter_mut().zip(&pc[py * pl.wp + pw..][..n]) {
                    d.write(v);
                }
                row[n..].fill(zero);
            } else {
                row.fill(zero);
            }
        }
    }
}

/// `dst[(y·W_p + x)·C + c] = src[c][y][x]`: an image `[C][H][W]` transposed to pixels of C
/// channels on rows of width `W_p` (positions outside the image are left as they are). Blocks of
/// 16 channels, so each read stays in 16 rows of `src` and each write is 16 contiguous values.
fn transpose_into_wide(src: &[f32], c: usize, [h, w]: [usize; 2], wp: usize, dst: &mut [f32]) {
    const BLOCK: usize = 16;
    let p = h * w;
    for c0 in (0..c).step_by(BLOCK) {
        let cb = BLOCK.min(c - c0);
        for y in 0..h {
            for x in 0..w {
                let q = (y * wp + x) * c + c0;
                let s = c0 * p + y * w + x;
                for (k, d) in dst[q..q + cb].iter_mut().enumerate() {
                    *d = src[s + k * p];
                }
            }
        }
    }
}

/// Any stride, one group of images: im2col, dW += dy · colᵀ, dx = col2im(Wᵀ · dy).
fn backward_im2col_group(
    xs: &[f32],
    w: &[f32],
    dys: &[f32],
    mut dxs: Option<&mut [MaybeUninit<f32>]>,
    g: &ConvGeometry,
    needs: Needs,
) -> GroupSums {
    let (k, p, co) = (g.k(), g.p(), g.c_out);
    let par = Parallelism::None;
    let GroupSums {
        weight: mut dw,
        bias: mut db,
    } = GroupSums::zeroed(needs, co * k, co);
    let col_len = k * p;
    let lens = [
        if needs.weight { col_len } else { 0 },
        if needs.x { col_len } else { 0 },
    ];
    with_scratch(lens[0] + lens[1], |scratch| {
        let (col, dcol) = scratch.split_at_mut(lens[0]);
        for (i, (xi, dyi)) in xs
            .chunks_exact(g.in_len())
            .zip(dys.chunks_exact(g.out_len()))
            .enumerate()
        {
            if needs.weight {
                im2col(xi, g, col);
                // dW (C_out×K) += dy[n] (C_out×P) · colᵀ (P×K)
                matmul(
                    [co, k, p],
                    &mut dw,
                    [k, 1],
                    i > 0,
                    dyi,
                    [p, 1],
                    col,
                    [1, p],
                    par,
                );
            }
            if let Some(dxs) = dxs.as_deref_mut() {
                // dcol (K×P) = Wᵀ (K×C_out) · dy[n] (C_out×P), folded back onto dx[n].
                matmul([k, p, co], dcol, [p, 1], false, w, [1, k], dyi, [p, 1], par);
                let dxi = &mut dxs[i * g.in_len()..(i + 1) * g.in_len()];
                dxi.fill(MaybeUninit::new(0.0));
                // SAFETY: every element was written just above; same layout.
                let dxi = unsafe { &mut *(std::ptr::from_mut(dxi) as *mut [f32]) };
                col2im(dcol, g, dxi);
            }
            if needs.bias {
                add_bias_grad(dyi, p, &mut db);
            }
        }
    });
    GroupSums {
        weight: dw,
        bias: db,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919 + seed * 104_729) % 1013) as f32 / 1013.0 - 0.5)
            .collect()
    }

    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    /// Forward and all gradients of one geometry: (y, dx, dW, db).
    fn run(g: &ConvGeometry, bias: bool) -> [Vec<f32>; 4] {
        let x = values(g.batch * g.in_len(), 1);
        let w = values(g.c_out * g.k(), 2);
        let b = values(g.c_out, 3);
        let dy = values(g.batch * g.out_len(), 4);
        let mut y = vec![0.0f32; g.batch * g.out_len()];
        conv2d_forward(&x, &w, Addends::bias(bias.then_some(&b[..])), g, &mut y);
        let grads = conv2d_backward(
            &x,
            &w,
            &dy,
            g,
            Needs {
                x: true,
                weight: true,
                bias,
            },
        );
        [
            y,
            grads.x.unwrap_or_default(),
            grads.weight.unwrap_or_default(),
            grads.bias.unwrap_or_default(),
        ]
    }

    /// The direct kernels, AVX-512 and AVX2 (or simd128 in WebAssembly), against the gemm path, on the stride-1 shapes the
    /// U-Net uses and the edges of their tiles: C_out not a multiple of 8 or 4 (20, 1, 3, 11),
    /// C_in of 1, a 1×1 conv, padding 0, odd sizes, uneven thread groups.
    #[test]
    fn direct_kernels_match_gemm() {
        use direct::Isa;
        let isas = match direct::isa() {
            Some(Isa::Avx512) => vec![Isa::Avx512, Isa::Avx2],
            Some(Isa::Avx2) => vec![Isa::Avx2],
            Some(Isa::Simd128) => vec![Isa::Simd128],
            None if cfg!(target_arch = "wasm32") => {
                panic!("a WebAssembly build without simd128: the kernels' wasm path is not tested")
            }
            None => {
                eprintln!("no AVX2 here: the direct kernels are not used");
                return;
            }
        };
        let cases = [
            // (batch, c_in, hw, c_out, k, pad)
            (4, 16, 28, 16, 3, 1),
            (3, 32, 14, 20, 3, 1),
            (5, 1, 28, 16, 3, 1),
            (2, 16, 28, 1, 3, 1),
            (2, 7, 13, 3, 3, 0),
            (4, 24, 7, 64, 3, 1),
            (2, 12, 9, 11, 1, 0),
            (2, 5, 6, 9, 5, 2),
        ];
        for isa in isas {
            let on_isa = |f: &dyn Fn() -> [Vec<f32>; 4]| match isa {
                Isa::Avx512 | Isa::Simd128 => f(),
                Isa::Avx2 => direct::with_avx2_kernels(f),
            };
            for (batch, ci, hw, co, k, pad) in cases {
                let g =
                    ConvGeometry::new([batch, ci, hw, hw], [co, ci, k, k], [1, 1], [(pad, pad); 2])
                        .expect("geometry");
                let taken = match isa {
                    Isa::Avx512 | Isa::Simd128 => direct_applies(&g),
                    Isa::Avx2 => direct::with_avx2_kernels(|| direct_applies(&g)),
                };
                assert_eq!(taken, Some(isa), "{g:?} should take the direct path");
                for bias in [true, false] {
                    let fast = on_isa(&|| run(&g, bias));
                    let reference = with_gemm_kernels(|| run(&g, bias));
                    for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
                        let e = rel_err(a, b);
                        assert!(
                            e <= 1e-5,
                            "{isa:?} {g:?} bias {bias}: output {i} differs by {e}"
                        );
                    }
                }
            }
        }
    }
}
