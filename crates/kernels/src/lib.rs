//! difflab's CPU kernels for burn's flex backend.
//!
//! burn 0.22's flex backend runs convolutions at about a quarter of its matmul speed (its conv
//! input gradient is a generic transposed conv, its weight gradient a conv whose kernel is the
//! whole image), and GroupNorm and SiLU as ten separate passes over memory. This crate adds, as
//! a burn backend extension (`#[backend_extension(Flex, Autodiff)]`, no fork of burn):
//! - [`conv2d`]: im2col + `gemm` per image, with its own input, weight and bias gradients;
//! - [`conv2d_module_shift`], [`conv2d_module_residual`]: the same conv with a ResBlock's
//!   time-embedding shift or skip connection added in the pass that writes the output;
//! - [`group_norm_silu`]: GroupNorm and SiLU in one pass forward and one backward.
//!
//! Both run difflab's kernels only when the tensors live on flex (plain or autodiff) and are
//! f32; on every other device (wgpu) they call burn's own ops, so results there and the weight
//! files are unchanged. The crate is built at opt-level 3 even in the dev profile (see the
//! workspace's Cargo.toml), so `cargo run` and `cargo test` get the same speed as a release.

pub mod attention;
pub mod conv;
mod direct;
mod ext;
pub mod helpers;
pub mod norm;
mod norm_image;
pub mod resample;
mod simd;

pub use simd::exp as exp_f32;

use std::cell::Cell;
use std::mem::MaybeUninit;

use burn::backend::{Dispatch, DispatchDevice};
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, PaddingConfig2d};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor};

pub use ext::DifflabKernels;

/// A zeroed buffer for a kernel's output, zeroed by all threads for large sizes (a serial
/// memset of an activation-sized buffer left the other core idle).
pub(crate) fn zeroed(n: usize) -> Vec<f32> {
    use rayon::iter::{IntoParallelIterator, ParallelExtend, ParallelIterator};
    if n < 1 << 16 {
        return vec![0.0; n];
    }
    let mut v = Vec::with_capacity(n);
    v.par_extend((0..n).into_par_iter().map(|_| 0.0f32));
    v
}

/// A kernel's output of `len` elements, written by `fill` into memory that is not zeroed first
/// (an activation-sized zero fill, overwritten at once, was about 5% of a sampling run).
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub(crate) unsafe fn written_by(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller's contract: `fill` initialised the first `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// `out` seen as possibly uninitialised, for a kernel's `_uninit` form.
///
/// # Safety
/// Only initialised values may be written through the result (never `MaybeUninit::uninit()`).
pub(crate) unsafe fn as_uninit(out: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the caller writes only initialised values.
    unsafe { &mut *(std::ptr::from_mut(out) as *mut [MaybeUninit<f32>]) }
}

thread_local! {
    static STOCK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with burn's stock ops instead of difflab's kernels on this thread (for tests and
/// benchmarks that compare the two).
pub fn with_stock_ops<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&STOCK, f)
}

/// Runs `f` with this thread's `flag` set, restoring it afterwards (also when `f` panics).
pub(crate) fn with_flag<R>(
    flag: &'static std::thread::LocalKey<Cell<bool>>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(&'static std::thread::LocalKey<Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|s| s.set(self.1));
        }
    }
    let _restore = Restore(flag, flag.with(|s| s.replace(true)));
    f()
}

/// Whether difflab's kernels run for tensors on `device`: flex or autodiff(flex), and not
/// inside [`with_stock_ops`].
pub fn kernels_apply(device: &Device) -> bool {
    if STOCK.with(Cell::get) {
        return false;
    }
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// 2-D convolution, as `burn::tensor::module::conv2d`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if kernels_apply(&x.device()) && x.dtype() == DType::F32 {
        let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
        Tensor::from_dispatch(match bias {
            Some(b) => <Dispatch as DifflabKernels>::difflab_conv2d_bias(
                x,
                weight,
                b.into_dispatch(),
                options,
            ),
            None => <Dispatch as DifflabKernels>::difflab_conv2d(x, weight, options),
        })
    } else {
        burn::tensor::module::conv2d(x, weight, bias, options)
    }
}

/// A burn `Conv2d` module's forward pass through [`conv2d`] (same padding rules).
pub fn conv2d_module(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let options = module_options(conv, &x);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// A `Conv2d` module's forward pass plus a shift per image and output channel, `shift`
/// `[N, C_out]` (a ResBlock's time embedding): conv(x) + shift[n, c] at every pixel. On flex
/// the shift joins the bias inside the conv's kernel instead of a broadcast add over the output.
pub fn conv2d_module_shift(conv: &Conv2d, x: Tensor<4>, shift: Tensor<2>) -> Tensor<4> {
    let options = module_options(conv, &x);
    if fusable(&x, &options) {
        // bias[c] + shift[n, c]: a tiny [N, C_out] add, then one pass in the kernel.
        let bias = match &conv.bias {
            Some(b) => b.val().unsqueeze_dim::<2>(0) + shift,
            None => shift,
        };
        Tensor::from_dispatch(<Dispatch as DifflabKernels>::difflab_conv2d_bias(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            bias.into_dispatch(),
            options,
        ))
    } else {
        let [n, c] = shift.dims();
        conv2d_module(conv, x) + shift.reshape([n, c, 1, 1])
    }
}

/// A `Conv2d` module's forward pass plus `residual` (same shape as the output: a skip
/// connection), added on flex in the pass that writes the conv's output.
pub fn conv2d_module_residual(conv: &Conv2d, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
    let options = module_options(conv, &x);
    if fusable(&x, &options) && residual.dtype() == DType::F32 {
        let bias = match &conv.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([conv.weight.dims()[0]], &x.device()),
        };
        Tensor::from_dispatch(<Dispatch as DifflabKernels>::difflab_conv2d_bias_residual(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            bias.into_dispatch(),
            residual.into_dispatch(),
            options,
        ))
    } else {
        conv2d_module(conv, x) + residual
    }
}

/// Whether difflab's conv kernel takes this call (flex, f32, groups 1, dilation 1).
fn fusable(x: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    kernels_apply(&x.device())
        && x.dtype() == DType::F32
        && options.groups == 1
        && options.dilation == [1, 1]
}

/// The conv options of a `Conv2d` module for input `x`, with burn-nn's padding rules.
fn module_options(conv: &Conv2d, x: &Tensor<4>) -> ConvOptions<2> {
    let [_, _, h, w] = x.dims();
    // burn-nn's rule (its helper is crate-private): "same" pads (k − 1 + (⌈n/s⌉ − 1)·s + … ) split
    // with the extra pixel at the end.
    let same = |k: usize, s: usize, n: usize| {
        let out = n.div_ceil(s);
        let total = if out > 0 {
            ((out - 1) * s + k).saturating_sub(n)
        } else {
            0
        };
        (total / 2, total - total / 2)
    };
    let ((top, bottom), (left, right)) = match conv.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (
            same(conv.kernel_size[0], conv.stride[0], h),
            same(conv.kernel_size[1], conv.stride[1], w),
        ),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
    };
    ConvOptions::new_with_padding(
        conv.stride,
        [(top, bottom), (left, right)],
        conv.dilation,
        conv.groups,
    )
}

/// Single-head self-attention from packed projections `qkv` `[B, T, 3C]` (Q, K, V side by
/// side): softmax(Q·Kᵀ/√C)·V, `[B, T, C]`.
pub fn attention(qkv: Tensor<3>, channels: usize) -> Tensor<3> {
    if kernels_apply(&qkv.device()) && qkv.dtype() == DType::F32 {
        Tensor::from_dispatch(<Dispatch as DifflabKernels>::difflab_attention(
            qkv.into_dispatch(),
            channels,
        ))
    } else {
        let c = channels;
        let q = qkv.clone().narrow(2, 0, c);
        let k = qkv.clone().narrow(2, c, c);
        let v = qkv.narrow(2, 2 * c, c);
        let scores = q.matmul(k.swap_dims(1, 2)) / (c as f64).sqrt();
        softmax(scores, 2).matmul(v)
    }
}

/// `a` `[N, A, H, W]` and `b` `[N, B, H, W]` concatenated along the channels (`Tensor::cat` on
/// dimension 1).
pub fn cat_channels(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    if kernels_apply(&a.device()) && a.dtype() == DType::F32 && b.dtype() == DType::F32 {
        Tensor::from_dispatch(<Dispatch as DifflabKernels>::difflab_cat_channels(
            a.into_dispatch(),
            b.into_dispatch(),
        ))
    } else {
        Tensor::cat(vec![a, b], 1)
    }
}

/// Nearest-neighbour ×2 upsampling of `[N, C, H, W]`: each pixel becomes a 2×2 block.
pub fn upsample2(x: Tensor<4>) -> Tensor<4> {
    if kernels_apply(&x.device()) && x.dtype() == DType::F32 {
        Tensor::from_dispatch(<Dispatch as DifflabKernels>::difflab_upsample2(
            x.into_dispatch(),
        ))
    } else {
        let [b, c, h, w] = x.dims();
        x.reshape([b, c, h, 1, w, 1])
            .repeat_dim(3, 2)
            .repeat_dim(5, 2)
            .reshape([b, c, 2 * h, 2 * w])
    }
}

/// A burn `GroupNorm` module's forward pass over `[N, C, H, W]`, followed by SiLU when `silu`,
/// fused into one kernel on flex.
pub fn group_norm_silu(norm: &GroupNorm, x: Tensor<4>, silu_after: bool) -> Tensor<4> {
    let fused = kernels_apply(&x.device()) && x.dtype() == DType::F32 && norm.affine;
    match (fused, norm.gamma.as_ref(), norm.beta.as_ref()) {
        (true, Some(gamma), Some(beta)) => {
            Tensor::from_dispatch(<Dispatch as DifflabKernels>::difflab_group_norm(
                x.into_dispatch(),
                gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
                norm.num_groups,
                norm.epsilon,
                silu_after,
            ))
        }
        _ => {
            let y = norm.forward(x);
            if silu_after { silu(y) } else { y }
        }
    }
}
