//! Direct convolution on zero-padded planes with AVX-512 microkernels: no im2col, no shifted
//! copies and no packing of the image, the approach of oneDNN's direct convs.
//!
//! A stride-1 conv on planes of width W_p (see `conv::Plane`) is, for each output position q
//! on the wide grid and each output row o,
//!
//!   y[o][q] = Σ_k w[o][k] · x[off_k + q],   k = (c, k_y, k_x),  off_k = c·L + k_y·W_p + k_x
//!
//! so each term of the sum is a contiguous, shifted read of the padded input. [`conv_wide`]
//! computes a tile of 8 output rows × 48 positions in 24 vector registers: per k it loads three
//! vectors of x and broadcasts eight weights, 24 fused multiply-adds for 11 loads. The input
//! gradient is the same sum with the weights transposed and flipped, read from dy placed in
//! padded planes. [`wgrad_wide`] computes the weight gradient, dw[o][k] = Σ_q dy'[o][q] ·
//! x[off_k + q], a tile of 4 rows × 4 taps summed over q (and over several images) in 16 vector
//! accumulators, then reduced. (Tiles of 4 × 5 and 4 × 6 were slower: LLVM kept part of their
//! accumulators on the stack; conv_bench 32→32 fwd+bwd 168-171 and 143 against 172-184 GFLOP/s.)
//!
//! Only x86-64 with AVX-512F has these kernels ([`available`]); elsewhere the conv runs on
//! `gemm` (conv.rs), which is also their reference in the tests.

/// f32 lanes of one vector.
pub(crate) const LANES: usize = 16;
/// Output rows of one block of packed weights (the widest tile).
pub(crate) const ROWS: usize = 8;

/// Whether this CPU runs the direct kernels.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Weights `w(o, k)` for `rows` output rows and `k_len` terms, packed for [`conv_wide`]: blocks
/// of [`ROWS`] rows, in each block the k terms in order and for each the block's rows side by
/// side (zeros past the last row), so a tile's broadcasts read memory in order.
pub(crate) fn pack_rows(rows: usize, k_len: usize, w: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let blocks = rows.div_ceil(ROWS);
    let mut packed = vec![0.0f32; blocks * k_len * ROWS];
    for (b, block) in packed.chunks_exact_mut(k_len * ROWS).enumerate() {
        for (k, lane) in block.chunks_exact_mut(ROWS).enumerate() {
            for (r, v) in lane.iter_mut().enumerate() {
                let o = b * ROWS + r;
                if o < rows {
                    *v = w(o, k);
                }
            }
        }
    }
    packed
}

/// `y[o·y_stride + q] = Σ_k w[o][k] · x[offs[k] + q]` for o in 0..rows and q in 0..cols, with
/// `w` packed by [`pack_rows`] (same `rows`, `k_len = offs.len()`). `cols` is a whole number of
/// vectors ([`LANES`]). Panics if a read or write would leave its slice, or if the CPU lacks
/// AVX-512 ([`available`]).
pub(crate) fn conv_wide(
    x: &[f32],
    offs: &[usize],
    w: &[f32],
    rows: usize,
    y: &mut [f32],
    y_stride: usize,
    cols: usize,
) {
    assert!(available(), "direct conv: needs AVX-512F");
    assert!(
        cols.is_multiple_of(LANES) && cols > 0 && rows > 0,
        "direct conv: tile shape"
    );
    let max_off = offs.iter().copied().max().unwrap_or(0);
    assert!(
        max_off + cols <= x.len(),
        "direct conv: input read out of range"
    );
    assert!(
        w.len() >= rows.div_ceil(ROWS) * offs.len() * ROWS,
        "direct conv: packed weights too short"
    );
    assert!(
        y_stride >= cols && (rows - 1) * y_stride + cols <= y.len(),
        "direct conv: output out of range"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); every read is x[offs[k] + q] with q < cols, every
    // write y[o·y_stride + q] with o < rows and q < cols, and every weight index below
    // blocks·k_len·ROWS: all inside the slices by the asserts above.
    unsafe {
        avx512::conv_wide(
            x.as_ptr(),
            offs,
            w.as_ptr(),
            rows,
            y.as_mut_ptr(),
            y_stride,
            cols,
        );
    }
}

/// One operand of [`wgrad_wide`] for a run of images: the slice, and the distance between
/// consecutive images in it.
#[derive(Clone, Copy)]
pub(crate) struct Images<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

/// `dw[o·dw_stride + k] += Σ_i Σ_{q < cols} dy[i][o·dy_stride + q] · x[i][offs[k] + q]` for o in
/// 0..rows and k in 0..offs.len(), over `images` images (each operand's image i starts at
/// i·stride). `cols` is a whole number of vectors. Panics as [`conv_wide`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn wgrad_wide(
    dy: Images,
    dy_stride: usize,
    rows: usize,
    x: Images,
    offs: &[usize],
    cols: usize,
    images: usize,
    dw: &mut [f32],
    dw_stride: usize,
) {
    assert!(available(), "direct conv: needs AVX-512F");
    assert!(
        cols.is_multiple_of(LANES) && cols > 0 && rows > 0 && images > 0,
        "direct conv: tile shape"
    );
    let max_off = offs.iter().copied().max().unwrap_or(0);
    assert!(
        (images - 1) * x.stride + max_off + cols <= x.data.len(),
        "direct conv: input read out of range"
    );
    assert!(
        (images - 1) * dy.stride + (rows - 1) * dy_stride + cols <= dy.data.len(),
        "direct conv: gradient read out of range"
    );
    assert!(
        dw_stride >= offs.len() && (rows - 1) * dw_stride + offs.len() <= dw.len(),
        "direct conv: weight gradient out of range"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present; every read dy[i·stride + o·dy_stride + q] and
    // x[i·stride + offs[k] + q] (i < images, q < cols) and every write dw[o·dw_stride + k] stays
    // inside its slice by the asserts above.
    unsafe {
        avx512::wgrad_wide(
            avx512::Run {
                ptr: dy.data.as_ptr(),
                image: dy.stride,
                row: dy_stride,
            },
            rows,
            avx512::Run {
                ptr: x.data.as_ptr(),
                image: x.stride,
                row: 0,
            },
            offs,
            cols,
            images,
            dw.as_mut_ptr(),
            dw_stride,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    use super::{LANES, ROWS};

    /// Vectors of positions per forward tile.
    const VECS: usize = 3;
    /// Rows and taps of a weight-gradient tile (then 2 and 1 rows for the last rows).
    const WG_ROWS: usize = 4;
    const WG_TAPS: usize = 4;

    /// See `super::conv_wide`. Tiles of 48 positions (fewer at the end) × 8 rows (then 4, 2, 1
    /// for the last rows); the positions outer, so a tile's input stays in L1 for every block.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn conv_wide(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        rows: usize,
        y: *mut f32,
        ys: usize,
        cols: usize,
    ) {
        let k_len = offs.len();
        let vecs = cols / LANES;
        let mut v0 = 0;
        while v0 < vecs {
            let nv = VECS.min(vecs - v0);
            let q = v0 * LANES;
            for b in 0..rows.div_ceil(ROWS) {
                let block_rows = ROWS.min(rows - b * ROWS);
                // SAFETY (all calls): the caller's bounds; row offsets r0 + R ≤ block_rows.
                unsafe {
                    let wb = w.add(b * k_len * ROWS);
                    let yb = y.add(b * ROWS * ys + q);
                    let xq = x.add(q);
                    let mut r0 = 0;
                    for r in [8, 4, 2, 1] {
                        if block_rows - r0 >= r {
                            let (wr, yr) = (wb.add(r0), yb.add(r0 * ys));
                            match (r, nv) {
                                (8, 3) => tile::<8, 3>(xq, offs, wr, yr, ys),
                                (8, 2) => tile::<8, 2>(xq, offs, wr, yr, ys),
                                (8, _) => tile::<8, 1>(xq, offs, wr, yr, ys),
                                (4, 3) => tile::<4, 3>(xq, offs, wr, yr, ys),
                                (4, 2) => tile::<4, 2>(xq, offs, wr, yr, ys),
                                (4, _) => tile::<4, 1>(xq, offs, wr, yr, ys),
                                (2, 3) => tile::<2, 3>(xq, offs, wr, yr, ys),
                                (2, 2) => tile::<2, 2>(xq, offs, wr, yr, ys),
                                (2, _) => tile::<2, 1>(xq, offs, wr, yr, ys),
                                (_, 3) => tile::<1, 3>(xq, offs, wr, yr, ys),
                                (_, 2) => tile::<1, 2>(xq, offs, wr, yr, ys),
                                (_, _) => tile::<1, 1>(xq, offs, wr, yr, ys),
                            }
                            r0 += r;
                        }
                    }
                }
            }
            v0 += nv;
        }
    }

    /// R rows × V vectors: y[r][v] = Σ_k w[k·ROWS + r] · x[offs[k] + 16v ..].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const R: usize, const V: usize>(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        y: *mut f32,
        ys: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let mut wk = w;
        for &off in offs {
            // SAFETY: the caller's bounds (see `super::conv_wide`).
            unsafe {
                let xp = x.add(off);
                let mut xv = [_mm512_setzero_ps(); V];
                for (v, xv) in xv.iter_mut().enumerate() {
                    *xv = _mm512_loadu_ps(xp.add(v * LANES));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*wk.add(r));
                    for (a, &xv) in acc.iter_mut().zip(&xv) {
                        *a = _mm512_fmadd_ps(b, xv, *a);
                    }
                }
                wk = wk.add(ROWS);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &a) in acc.iter().enumerate() {
                // SAFETY: the caller's bounds.
                unsafe { _mm512_storeu_ps(y.add(r * ys + v * LANES), a) };
            }
        }
    }

    /// An operand of the weight gradient: its first value, and the distances between images
    /// and between rows.
    #[derive(Clone, Copy)]
    pub(super) struct Run {
        pub ptr: *const f32,
        pub image: usize,
        pub row: usize,
    }

    /// See `super::wgrad_wide`: tiles of 4 rows × 4 taps (fewer at the edges), each summed over
    /// all the images before its 16 accumulators are reduced.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn wgrad_wide(
        dy: Run,
        rows: usize,
        x: Run,
        offs: &[usize],
        cols: usize,
        images: usize,
        dw: *mut f32,
        dws: usize,
    ) {
        let mut o = 0;
        while o < rows {
            let nr = [WG_ROWS, 2, 1]
                .into_iter()
                .find(|&r| rows - o >= r)
                .unwrap_or(1);
            for (j, taps) in offs.chunks(WG_TAPS).enumerate() {
                let k = j * WG_TAPS;
                // SAFETY (all calls): the caller's bounds; o + nr ≤ rows, k + taps ≤ offs.len().
                unsafe {
                    let d = Run {
                        ptr: dy.ptr.add(o * dy.row),
                        ..dy
                    };
                    let out = dw.add(o * dws + k);
                    macro_rules! go {
                        ($r:literal) => {
                            match taps.len() {
                                4 => wg_tile::<$r, 4>(d, x, taps, cols, images, out, dws),
                                3 => wg_tile::<$r, 3>(d, x, taps, cols, images, out, dws),
                                2 => wg_tile::<$r, 2>(d, x, taps, cols, images, out, dws),
                                _ => wg_tile::<$r, 1>(d, x, taps, cols, images, out, dws),
                            }
                        };
                    }
                    match nr {
                        WG_ROWS => go!(4),
                        2 => go!(2),
                        _ => go!(1),
                    }
                }
            }
            o += nr;
        }
    }

    /// R rows × J taps: dw[r][j] += Σ_i Σ_q dy[i][r][q] · x[i][offs[j] + q].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn wg_tile<const R: usize, const J: usize>(
        dy: Run,
        x: Run,
        offs: &[usize],
        cols: usize,
        images: usize,
        dw: *mut f32,
        dws: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); R]; J];
        // One loop over (image, position), with the operands' pointers stepped along: nested
        // loops over images and positions kept only part of the accumulators in registers.
        let mut dp = [dy.ptr; R];
        for (r, p) in dp.iter_mut().enumerate() {
            // SAFETY: the caller's bounds.
            *p = unsafe { dy.ptr.add(r * dy.row) };
        }
        let mut xp = [x.ptr; J];
        for (p, &off) in xp.iter_mut().zip(offs) {
            // SAFETY: the caller's bounds.
            *p = unsafe { x.ptr.add(off) };
        }
        let (mut q, mut i) = (0, 0);
        loop {
            // SAFETY: the caller's bounds: each pointer is at image i < images, position q < cols.
            unsafe {
                let mut d = [_mm512_setzero_ps(); R];
                for (d, p) in d.iter_mut().zip(&mut dp) {
                    *d = _mm512_loadu_ps(*p);
                    *p = p.add(LANES);
                }
                for (acc, p) in acc.iter_mut().zip(&mut xp) {
                    let xv = _mm512_loadu_ps(*p);
                    *p = p.add(LANES);
                    for (a, &d) in acc.iter_mut().zip(&d) {
                        *a = _mm512_fmadd_ps(d, xv, *a);
                    }
                }
            }
            q += LANES;
            if q == cols {
                q = 0;
                i += 1;
                if i == images {
                    break;
                }
                // To the same rows and taps of the next image (wrapping pointers: the last
                // step may point past the operands, and they are not read there).
                for p in &mut dp {
                    *p = p.wrapping_add(dy.image - cols);
                }
                for p in &mut xp {
                    *p = p.wrapping_add(x.image - cols);
                }
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            for (r, &a) in acc.iter().enumerate() {
                // SAFETY: the caller's bounds.
                unsafe {
                    let p = dw.add(r * dws + j);
                    *p += _mm512_reduce_add_ps(a);
                }
            }
        }
    }
}
