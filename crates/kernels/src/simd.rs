//! Elementwise loops compiled three times (AVX-512, AVX2 + FMA, baseline x86-64) and chosen at
//! run time, so one binary is fast on a new CPU and still runs on an old one; and an exp that
//! vectorises (the C library's `expf` is a call per element).

/// Defines `fn name(args) -> ret` whose body is compiled for each instruction set and picked by
/// CPU feature detection on each call (the check is a cached atomic load).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                fn v4($($arg: $ty),*) $(-> $ret)? { portable($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) $(-> $ret)? { portable($($arg),*) }
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512dq")
                    && std::is_x86_feature_detected!("avx512bw")
                {
                    // SAFETY: the CPU has every feature v4 was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has every feature v3 was compiled for.
                    return unsafe { v3($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// e^x for f32, to about 2 ulp over the whole range, branch-free so loops vectorise (Cephes'
/// expf: x = k·ln 2 + r with |r| ≤ ln 2 / 2, e^r by a degree-6 polynomial, 2^k from the exponent
/// bits). Below −87 it returns e^−87 (≈ 1.6·10⁻³⁸), above 88 e^88; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5·2²³: adding it rounds to an integer, held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    // ln 2 split in two so k·C1 is exact (Cody & Waite).
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.0, 88.0);
    let kf = xc * LOG2E + MAGIC;
    let k_int = kf.to_bits() as i32 - MAGIC.to_bits() as i32;
    let k = kf - MAGIC;
    let r = xc - k * C1 - k * C2;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let two_k = f32::from_bits(((k_int + 127) as u32) << 23);
    let y = e_r * two_k;
    if x.is_nan() { x } else { y }
}

/// The logistic sigmoid 1/(1 + e^−a).
#[inline(always)]
pub fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + exp(-a))
}

/// f32 lanes of an AVX-512 vector: the loops below keep this many independent partial sums.
pub(crate) const LANES: usize = 16;

multiversion! {
    /// Σ x, in 16 independent f32 partial sums (so it vectorises; a plain `iter().sum()` adds
    /// one element at a time, in order) added in f64.
    pub(crate) fn sum(x: &[f32]) -> f64 {
        let mut acc = [0.0f32; LANES];
        let n = x.len() / LANES * LANES;
        for v in x[..n].chunks_exact(LANES) {
            for l in 0..LANES {
                acc[l] += v[l];
            }
        }
        acc.iter().chain(&x[n..]).map(|&v| f64::from(v)).sum()
    }
}
