//! Direct convolution on zero-padded planes with SIMD microkernels (AVX-512, or AVX2 + FMA): no
//! im2col, no shifted copies and no packing of the image, the approach of oneDNN's direct convs.
//!
//! A stride-1 conv on planes of width W_p (see `conv::Plane`) is, for each output position q
//! on the wide grid and each output row o,
//!
//!   y[o][q] = Σ_k w[o][k] · x[off_k + q],   k = (c, k_y, k_x),  off_k = c·L + k_y·W_p + k_x
//!
//! so each term of the sum is a contiguous, shifted read of the padded input. [`conv_wide`]
//! computes a tile of output rows × vectors of positions in vector registers: with AVX-512 (32
//! registers) 8 rows × 3 vectors of 16, per k three loads of x, eight broadcasts and 24 fused
//! multiply-adds; with AVX2 (16 registers) 4 rows × 2 vectors of 8 (4 × 3 left LLVM one register
//! short: it spilled an accumulator in the inner loop, and ran at half the speed). The input
//! gradient is the same sum with the weights transposed and flipped, read from dy placed in
//! padded planes. [`wgrad_wide`] computes the weight gradient, dw[o][k] = Σ_q dy'[o][q] · x[off_k + q], a tile
//! of 4 rows × 4 taps (AVX2: 4 × 2) summed over q (and over several images) in vector
//! accumulators, then reduced. (AVX-512 tiles of 4 × 5 and 4 × 6 were slower: LLVM kept part of
//! their accumulators on the stack; conv_bench 32→32 fwd+bwd 168-171 and 143 against 172-184
//! GFLOP/s.)
//!
//! The kernels are written once, generic over [`Isa`]'s vector operations, and compiled for each
//! instruction set behind `#[target_feature]`; [`isa`] picks one at run time. The browser build
//! (wasm32 with `+simd128`) runs them on WebAssembly's 4-lane vectors, in AVX2's tile shapes.
//! Without any of these the conv runs on `gemm` (conv.rs), which is also their reference in the
//! tests.

use std::cell::Cell;

/// f32 lanes of the widest vector (a position count that is a multiple of this is a whole
/// number of vectors for every instruction set).
pub(crate) const LANES: usize = 16;
/// Output rows of one block of packed weights (the widest tile).
pub(crate) const ROWS: usize = 8;

/// The instruction sets the direct kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16 lanes, 32 registers.
    Avx512,
    /// AVX2 + FMA: 8 lanes, 16 registers.
    Avx2,
    /// WebAssembly's 128-bit SIMD (the browser build, `+simd128`): 4 lanes, no fused
    /// multiply-add; the engine maps it to 16 SSE/AVX registers on x86-64.
    Simd128,
}

thread_local! {
    static AVX2_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the direct kernels on AVX2 even on a CPU with AVX-512 (to test and measure the
/// path of CPUs without AVX-512).
pub fn with_avx2_kernels<R>(f: impl FnOnce() -> R) -> R {
    crate::with_flag(&AVX2_ONLY, f)
}

/// The instruction set this CPU runs the direct kernels with (on this thread; see
/// [`with_avx2_kernels`]), or `None` without AVX2 + FMA (or, in WebAssembly, without simd128).
pub(crate) fn isa() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && !AVX2_ONLY.with(Cell::get) {
            return Some(Isa::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Some(Isa::Avx2);
        }
    }
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        return Some(Isa::Simd128);
    }
    None
}

/// Whether the CPU has `isa` (a caller's promise checked before any kernel runs).
fn has(isa: Isa) -> bool {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => std::is_x86_feature_detected!("avx512f"),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
        Isa::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
        #[allow(unreachable_patterns)]
        _ => false,
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
/// `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_wide(
    isa: Isa,
    x: &[f32],
    offs: &[usize],
    w: &[f32],
    rows: usize,
    y: &mut [f32],
    y_stride: usize,
    cols: usize,
) {
    assert!(has(isa), "direct conv: the CPU lacks {isa:?}");
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
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    {
        let (x, w, y) = (x.as_ptr(), w.as_ptr(), y.as_mut_ptr());
        // SAFETY: the CPU has `isa` (asserted); every read is x[offs[k] + q] with q < cols,
        // every write y[o·y_stride + q] with o < rows and q < cols, and every weight index below
        // blocks·k_len·ROWS: all inside the slices by the asserts above.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => simd::conv_wide_avx512(x, offs, w, rows, y, y_stride, cols),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => simd::conv_wide_avx2(x, offs, w, rows, y, y_stride, cols),
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Isa::Simd128 => simd::conv_wide_simd128(x, offs, w, rows, y, y_stride, cols),
                #[allow(unreachable_patterns)]
                _ => unreachable!("has(isa) was asserted"),
            }
        }
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
    isa: Isa,
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
    assert!(has(isa), "direct conv: the CPU lacks {isa:?}");
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
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    {
        let dy = simd::Run {
            ptr: dy.data.as_ptr(),
            image: dy.stride,
            row: dy_stride,
        };
        let x = simd::Run {
            ptr: x.data.as_ptr(),
            image: x.stride,
            row: 0,
        };
        let dw = dw.as_mut_ptr();
        // SAFETY: the CPU has `isa`; every read dy[i·stride + o·dy_stride + q] and
        // x[i·stride + offs[k] + q] (i < images, q < cols) and every write dw[o·dw_stride + k]
        // stays inside its slice by the asserts above.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => {
                    simd::wgrad_wide_avx512(dy, rows, x, offs, cols, images, dw, dw_stride);
                }
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => simd::wgrad_wide_avx2(dy, rows, x, offs, cols, images, dw, dw_stride),
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Isa::Simd128 => {
                    simd::wgrad_wide_simd128(dy, rows, x, offs, cols, images, dw, dw_stride);
                }
                #[allow(unreachable_patterns)]
                _ => unreachable!("has(isa) was asserted"),
            }
        }
    }
}

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod simd {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    use std::arch::wasm32::{
        f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, v128, v128_load, v128_store,
    };
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::{
        __m256, __m512, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps,
        _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
        _mm512_reduce_add_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };

    use super::ROWS;

    /// The vector operations the kernels use. Every method is `#[inline(always)]` and runs
    /// only inside a function compiled for its instruction set (the `_avx512`, `_avx2` and
    /// `_simd128` entry points below), where its intrinsics inline.
    trait Vector: Copy {
        const LANES: usize;
        unsafe fn zero() -> Self;
        unsafe fn load(p: *const f32) -> Self;
        unsafe fn splat(v: f32) -> Self;
        /// self·b + c
        unsafe fn mul_add(self, b: Self, c: Self) -> Self;
        unsafe fn store(self, p: *mut f32);
        unsafe fn sum(self) -> f32;
    }

    #[cfg(target_arch = "x86_64")]
    impl Vector for __m512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: AVX-512F is present wherever this runs (see the trait).
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller's bounds.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            // SAFETY: AVX-512F is present wherever this runs (see the trait).
            unsafe { _mm512_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            // SAFETY: AVX-512F is present wherever this runs (see the trait).
            unsafe { _mm512_fmadd_ps(self, b, c) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller's bounds.
            unsafe { _mm512_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            // SAFETY: AVX-512F is present wherever this runs (see the trait).
            unsafe { _mm512_reduce_add_ps(self) }
        }
    }

    #[cfg(target_arch = "x86_64")]
    impl Vector for __m256 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: AVX is present wherever this runs (see the trait).
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller's bounds.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            // SAFETY: AVX is present wherever this runs (see the trait).
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            // SAFETY: FMA is present wherever this runs (see the trait).
            unsafe { _mm256_fmadd_ps(self, b, c) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller's bounds.
            unsafe { _mm256_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            // SAFETY: AVX is present wherever this runs (see the trait).
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(self), _mm256_extractf128_ps(self, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
            }
        }
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    impl Vector for v128 {
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn zero() -> Self {
            f32x4_splat(0.0)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller's bounds (wasm loads need no alignment).
            unsafe { v128_load(p.cast::<v128>()) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            f32x4_splat(v)
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            // simd128 has no fused multiply-add (relaxed-simd's is not in every browser).
            f32x4_add(f32x4_mul(self, b), c)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller's bounds.
            unsafe { v128_store(p.cast::<v128>(), self) }
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            (f32x4_extract_lane::<0>(self) + f32x4_extract_lane::<1>(self))
                + (f32x4_extract_lane::<2>(self) + f32x4_extract_lane::<3>(self))
        }
    }

    /// One forward tile: R rows × V vectors, y[r][v] = Σ_k w[k·ROWS + r] · x[offs[k] + v·lanes ..].
    #[inline(always)]
    unsafe fn tile<T: Vector, const R: usize, const V: usize>(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        y: *mut f32,
        ys: usize,
    ) {
        // SAFETY (whole body): the caller's bounds (see `super::conv_wide`).
        unsafe {
            let mut acc = [[T::zero(); V]; R];
            let mut wk = w;
            for &off in offs {
                let xp = x.add(off);
                let mut xv = [T::zero(); V];
                for (v, xv) in xv.iter_mut().enumerate() {
                    *xv = T::load(xp.add(v * T::LANES));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = T::splat(*wk.add(r));
                    for (a, &xv) in acc.iter_mut().zip(&xv) {
                        *a = b.mul_add(xv, *a);
                    }
                }
                wk = wk.add(ROWS);
            }
            for (r, acc) in acc.iter().enumerate() {
                for (v, &a) in acc.iter().enumerate() {
                    a.store(y.add(r * ys + v * T::LANES));
                }
            }
        }
    }

    /// Calls `tile::<T, R, V>` for the runtime (rows, vectors) among the listed shapes.
    macro_rules! forward_tiles {
        ($T:ty, $r:expr, $nv:expr, ($x:expr, $offs:expr, $w:expr, $y:expr, $ys:expr),
         [$($R:literal),*]) => {
            match ($r, $nv) {
                $(
                    ($R, 3) => tile::<$T, $R, 3>($x, $offs, $w, $y, $ys),
                    ($R, 2) => tile::<$T, $R, 2>($x, $offs, $w, $y, $ys),
                    ($R, _) => tile::<$T, $R, 1>($x, $offs, $w, $y, $ys),
                )*
                _ => unreachable!("a forward tile shape that is not listed"),
            }
        };
    }

    /// `super::conv_wide` for vectors T: tiles of `max_vecs` vectors of positions (fewer at the
    /// end) × the widest row count in `row_tiles` (then narrower ones for a block's last rows); the
    /// positions outer, so a tile's input stays in L1 for every block of rows.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn conv_wide<T: Vector>(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        rows: usize,
        y: *mut f32,
        ys: usize,
        cols: usize,
        (row_tiles, max_vecs): (&[usize], usize),
        run: impl Fn(usize, usize, *const f32, *const f32, *mut f32),
    ) {
        let k_len = offs.len();
        let vecs = cols / T::LANES;
        let mut v0 = 0;
        while v0 < vecs {
            let nv = max_vecs.min(vecs - v0);
            let q = v0 * T::LANES;
            for b in 0..rows.div_ceil(ROWS) {
                let block_rows = ROWS.min(rows - b * ROWS);
                // SAFETY: the caller's bounds; each tile's rows r0..r0 + r lie in the block.
                unsafe {
                    let wb = w.add(b * k_len * ROWS);
                    let yb = y.add(b * ROWS * ys + q);
                    let mut r0 = 0;
                    while r0 < block_rows {
                        let r = row_tiles
                            .iter()
                            .copied()
                            .find(|&r| r <= block_rows - r0)
                            .unwrap_or(1);
                        run(r, nv, x.add(q), wb.add(r0), yb.add(r0 * ys));
                        r0 += r;
                    }
                }
            }
            v0 += nv;
        }
    }

    /// See `super::conv_wide`: 8-row tiles of 3 × 16 positions.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn conv_wide_avx512(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        rows: usize,
        y: *mut f32,
        ys: usize,
        cols: usize,
    ) {
        // SAFETY: AVX-512F is enabled here; the caller's bounds.
        unsafe {
            let tiles = (&[8, 4, 2, 1][..], 3);
            conv_wide::<__m512>(x, offs, w, rows, y, ys, cols, tiles, |r, nv, x, w, y| {
                forward_tiles!(__m512, r, nv, (x, offs, w, y, ys), [8, 4, 2, 1]);
            });
        }
    }

    /// The 16-register forward tile (AVX2, simd128): rows × vectors of positions.
    const AVX2_ROWS: usize = 4;
    const AVX2_VECS: usize = 2;

    /// See `super::conv_wide`: tiles of AVX2_ROWS rows × AVX2_VECS vectors of 8 positions.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv_wide_avx2(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        rows: usize,
        y: *mut f32,
        ys: usize,
        cols: usize,
    ) {
        // SAFETY: AVX2 and FMA are enabled here; the caller's bounds.
        unsafe { conv_wide_4x2::<__m256>(x, offs, w, rows, y, ys, cols) }
    }

    /// `super::conv_wide` in AVX2_ROWS × AVX2_VECS tiles for 16-register vector sets (AVX2's,
    /// and WebAssembly's simd128), inlined into each instruction set's entry point.
    #[inline(always)]
    unsafe fn conv_wide_4x2<T: Vector>(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        rows: usize,
        y: *mut f32,
        ys: usize,
        cols: usize,
    ) {
        // SAFETY: the caller's instruction set and bounds.
        unsafe {
            let tiles = (&[AVX2_ROWS, 2, 1][..], AVX2_VECS);
            conv_wide::<T>(x, offs, w, rows, y, ys, cols, tiles, |r, nv, x, w, y| {
                forward_tiles!(T, r, nv, (x, offs, w, y, ys), [4, 3, 2, 1]);
            });
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

    /// One weight-gradient tile, R rows × J taps: dw[r][j] += Σ_i Σ_q dy[i][r][q] ·
    /// x[i][offs[j] + q].
    #[inline(always)]
    unsafe fn wg_tile<T: Vector, const R: usize, const J: usize>(
        dy: Run,
        x: Run,
        offs: &[usize],
        cols: usize,
        images: usize,
        dw: *mut f32,
        dws: usize,
    ) {
        // SAFETY (whole body): the caller's bounds: each pointer is at image i < images,
        // position q < cols when it is read.
        unsafe {
            let mut acc = [[T::zero(); R]; J];
            // One loop over (image, position), with the operands' pointers stepped along:
            // nested loops over images and positions kept only part of the accumulators in
            // registers.
            let mut dp = [dy.ptr; R];
            for (r, p) in dp.iter_mut().enumerate() {
                *p = dy.ptr.add(r * dy.row);
            }
            let mut xp = [x.ptr; J];
            for (p, &off) in xp.iter_mut().zip(offs) {
                *p = x.ptr.add(off);
            }
            let (mut q, mut i) = (0, 0);
            loop {
                let mut d = [T::zero(); R];
                for (d, p) in d.iter_mut().zip(&mut dp) {
                    *d = T::load(*p);
                    *p = p.add(T::LANES);
                }
                for (acc, p) in acc.iter_mut().zip(&mut xp) {
                    let xv = T::load(*p);
                    *p = p.add(T::LANES);
                    for (a, &d) in acc.iter_mut().zip(&d) {
                        *a = d.mul_add(xv, *a);
                    }
                }
                q += T::LANES;
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
                    *dw.add(r * dws + j) += a.sum();
                }
            }
        }
    }

    /// Calls `wg_tile::<T, R, J>` for the runtime (rows, taps) among the listed ones.
    macro_rules! wgrad_tiles {
        ($T:ty, $r:expr, $j:expr, $args:tt, [$($R:literal),*], $js:tt) => {
            match $r {
                $( $R => wgrad_tiles!(@taps $T, $R, $j, $args, $js), )*
                _ => unreachable!("a weight-gradient tile row count that is not listed"),
            }
        };
        (@taps $T:ty, $R:literal, $j:expr,
         ($d:expr, $x:expr, $t:expr, $c:expr, $n:expr, $o:expr, $s:expr), [$($J:literal),*]) => {
            match $j {
                $( $J => wg_tile::<$T, $R, $J>($d, $x, $t, $c, $n, $o, $s), )*
                _ => unreachable!("a weight-gradient tile tap count that is not listed"),
            }
        };
    }

    /// `super::wgrad_wide` for vectors T: tiles of the widest row count in `row_tiles` ×
    /// `taps` taps (fewer at the edges), each summed over all the images before its
    /// accumulators are reduced.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn wgrad_wide(
        dy: Run,
        rows: usize,
        offs: &[usize],
        dw: *mut f32,
        dws: usize,
        row_tiles: &[usize],
        taps: usize,
        run: impl Fn(usize, &[usize], Run, *mut f32),
    ) {
        let mut o = 0;
        while o < rows {
            let nr = row_tiles
                .iter()
                .copied()
                .find(|&r| r <= rows - o)
                .unwrap_or(1);
            for (j, t) in offs.chunks(taps).enumerate() {
                // SAFETY: the caller's bounds; o + nr ≤ rows, j·taps + t.len() ≤ offs.len().
                unsafe {
                    let d = Run {
                        ptr: dy.ptr.add(o * dy.row),
                        ..dy
                    };
                    run(nr, t, d, dw.add(o * dws + j * taps));
                }
            }
            o += nr;
        }
    }

    /// See `super::wgrad_wide`: tiles of 4 rows × 4 taps (16 accumulators).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn wgrad_wide_avx512(
        dy: Run,
        rows: usize,
        x: Run,
        offs: &[usize],
        cols: usize,
        images: usize,
        dw: *mut f32,
        dws: usize,
    ) {
        // SAFETY: AVX-512F is enabled here; the caller's bounds.
        unsafe {
            wgrad_wide(dy, rows, offs, dw, dws, &[4, 2, 1], 4, |r, t, d, out| {
                wgrad_tiles!(
                    __m512,
                    r,
                    t.len(),
                    (d, x, t, cols, images, out, dws),
                    [4, 2, 1],
                    [4, 3, 2, 1]
                );
            });
        }
    }

    /// See `super::wgrad_wide`: tiles of 4 rows × 2 taps (8 accumulators of 16 registers).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn wgrad_wide_avx2(
        dy: Run,
        rows: usize,
        x: Run,
        offs: &[usize],
        cols: usize,
        images: usize,
        dw: *mut f32,
        dws: usize,
    ) {
        // SAFETY: AVX2 and FMA are enabled here; the caller's bounds.
        unsafe { wgrad_wide_4x2::<__m256>(dy, rows, x, offs, cols, images, dw, dws) }
    }

    /// `super::wgrad_wide` in tiles of 4 rows × 2 taps for 16-register vector sets (AVX2's, and
    /// WebAssembly's simd128), inlined into each instruction set's entry point.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn wgrad_wide_4x2<T: Vector>(
        dy: Run,
        rows: usize,
        x: Run,
        offs: &[usize],
        cols: usize,
        images: usize,
        dw: *mut f32,
        dws: usize,
    ) {
        // SAFETY: the caller's instruction set and bounds.
        unsafe {
            wgrad_wide(dy, rows, offs, dw, dws, &[4, 2, 1], 2, |r, t, d, out| {
                wgrad_tiles!(
                    T,
                    r,
                    t.len(),
                    (d, x, t, cols, images, out, dws),
                    [4, 2, 1],
                    [2, 1]
                );
            });
        }
    }

    /// See `super::conv_wide`: tiles of 4 rows × 2 vectors of 4 positions (8 accumulators, two
    /// loads, a broadcast and a product in flight: 12 of the 16 registers the engine has).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub(super) unsafe fn conv_wide_simd128(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        rows: usize,
        y: *mut f32,
        ys: usize,
        cols: usize,
    ) {
        // SAFETY: simd128 is enabled for the whole build; the caller's bounds.
        unsafe { conv_wide_4x2::<v128>(x, offs, w, rows, y, ys, cols) }
    }

    /// See `super::wgrad_wide`: tiles of 4 rows × 2 taps, as AVX2's.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn wgrad_wide_simd128(
        dy: Run,
        rows: usize,
        x: Run,
        offs: &[usize],
        cols: usize,
        images: usize,
        dw: *mut f32,
        dws: usize,
    ) {
        // SAFETY: simd128 is enabled for the whole build; the caller's bounds.
        unsafe { wgrad_wide_4x2::<v128>(dy, rows, x, offs, cols, images, dw, dws) }
    }
}
