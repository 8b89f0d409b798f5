//! difflab's flex kernels (crates/kernels) against burn's stock ops: conv2d forward and its
//! input, weight and bias gradients; GroupNorm + SiLU fused against the composed ops; training
//! and sampling with the kernels against the same runs on stock ops.

use std::sync::atomic::AtomicBool;

use burn::module::Param;
use burn::nn::GroupNormConfig;
use burn::tensor::activation::silu;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use difflab::diffusion::noise::gaussian;
use difflab::diffusion::sample_seeded;
use difflab::model::{Denoiser, UNetConfig, UNetDenoiser};
use difflab::tensor_util::{tensor4, to_vec};
use difflab::train::unet::{ImageSet, TrainConfig, UNetTrainer};
use difflab_kernels::{
    conv2d, conv2d_module_residual, conv2d_module_shift, exp_f32, group_norm_silu, kernels_apply,
    with_stock_ops,
};

/// max |a − b| / max |b|: the error relative to the reference's scale.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

fn random<const D: usize>(seed: u64, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::<1>::from_floats(gaussian(seed, 0, n).as_slice(), device).reshape(shape)
}

/// One conv case: shapes, stride, padding ((top, bottom), (left, right)) and bias.
struct Case {
    batch: usize,
    c_in: usize,
    c_out: usize,
    hw: [usize; 2],
    k: usize,
    stride: usize,
    padding: [(usize, usize); 2],
    bias: bool,
}

/// Output, ∂/∂x, ∂/∂W, ∂/∂b of Σ r·conv(x) for a fixed random r, on autodiff flex.
fn conv_run(c: &Case) -> [Vec<f32>; 4] {
    let device = Device::flex().autodiff();
    let x = random(1, [c.batch, c.c_in, c.hw[0], c.hw[1]], &device).require_grad();
    let w = random(2, [c.c_out, c.c_in, c.k, c.k], &device).require_grad();
    let b = c.bias.then(|| random(3, [c.c_out], &device).require_grad());
    let options = ConvOptions::new_with_padding([c.stride; 2], c.padding, [1, 1], 1);
    let y = conv2d(x.clone(), w.clone(), b.clone(), options);
    let r = random(4, y.dims(), &device);
    let grads = (y.clone() * r).sum().backward();
    let gb = match &b {
        Some(b) => to_vec(b.grad(&grads).expect("bias gradient")).expect("values"),
        None => Vec::new(),
    };
    [
        to_vec(y.inner()).expect("values"),
        to_vec(x.grad(&grads).expect("input gradient")).expect("values"),
        to_vec(w.grad(&grads).expect("weight gradient")).expect("values"),
        gb,
    ]
}

#[test]
fn conv2d_matches_burn_forward_and_every_gradient() {
    let p1 = [(1, 1), (1, 1)];
    let p0 = [(0, 0), (0, 0)];
    let cases = [
        // 3×3, stride 1, padding 1: the U-Net's conv (odd size, batch 1, bias).
        Case {
            batch: 1,
            c_in: 3,
            c_out: 5,
            hw: [7, 7],
            k: 3,
            stride: 1,
            padding: p1,
            bias: true,
        },
        // C_in = 1 (the U-Net's first conv), stride 2 (its down-sampling), no bias.
        Case {
            batch: 2,
            c_in: 1,
            c_out: 4,
            hw: [13, 13],
            k: 3,
            stride: 2,
            padding: p1,
            bias: false,
        },
        // C_out = 1 (its last conv), padding 0.
        Case {
            batch: 3,
            c_in: 4,
            c_out: 1,
            hw: [13, 13],
            k: 3,
            stride: 1,
            padding: p0,
            bias: true,
        },
        // 1×1, stride 1, no padding (the skip projection), batch 64.
        Case {
            batch: 64,
            c_in: 3,
            c_out: 4,
            hw: [7, 7],
            k: 1,
            stride: 1,
            padding: p0,
            bias: true,
        },
        // Stride 2, padding 0, batch 64.
        Case {
            batch: 64,
            c_in: 2,
            c_out: 3,
            hw: [13, 13],
            k: 3,
            stride: 2,
            padding: p0,
            bias: false,
        },
        // 1×1 with stride 2 and padding 1.
        Case {
            batch: 5,
            c_in: 6,
            c_out: 2,
            hw: [7, 7],
            k: 1,
            stride: 2,
            padding: p1,
            bias: true,
        },
        // Not square, asymmetric padding.
        Case {
            batch: 2,
            c_in: 5,
            c_out: 6,
            hw: [10, 9],
            k: 3,
            stride: 1,
            padding: [(0, 1), (1, 0)],
            bias: true,
        },
        // C_out of 20 (a full block of 16 channels and a part one in the weight gradient's
        // transpose), several images per thread (buffers zeroed once, then reused).
        Case {
            batch: 5,
            c_in: 7,
            c_out: 20,
            hw: [9, 11],
            k: 3,
            stride: 1,
            padding: p1,
            bias: true,
        },
        // The U-Net's size: 32 → 32 at 28×28.
        Case {
            batch: 2,
            c_in: 32,
            c_out: 32,
            hw: [28, 28],
            k: 3,
            stride: 1,
            padding: p1,
            bias: true,
        },
    ];
    let names = [
        "output",
        "input gradient",
        "weight gradient",
        "bias gradient",
    ];
    for (i, c) in cases.iter().enumerate() {
        let fast = conv_run(c);
        let stock = with_stock_ops(|| conv_run(c));
        for (k, name) in names.iter().enumerate() {
            assert_eq!(fast[k].len(), stock[k].len(), "case {i}: {name} shape");
            let e = rel_err(&fast[k], &stock[k]);
            assert!(e <= 1e-4, "case {i}: {name} relative error {e}");
        }
        assert!(
            fast[2].iter().any(|v| *v != 0.0),
            "case {i}: the weight gradient is not zero"
        );
    }
}

#[test]
fn conv2d_without_autodiff_matches_burn() {
    let device = Device::flex();
    assert!(kernels_apply(&device) && kernels_apply(&device.clone().autodiff()));
    assert!(!with_stock_ops(|| kernels_apply(&device)));
    let x = random(5, [4, 8, 14, 14], &device);
    let w = random(6, [16, 8, 3, 3], &device);
    let b = random(7, [16], &device);
    let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
    let fast = to_vec(conv2d(
        x.clone(),
        w.clone(),
        Some(b.clone()),
        options.clone(),
    ))
    .expect("fast");
    let stock = to_vec(burn::tensor::module::conv2d(x, w, Some(b), options)).expect("stock");
    assert_eq!(fast.len(), 4 * 16 * 7 * 7);
    assert!(rel_err(&fast, &stock) <= 1e-5);
}

/// Output and the gradients of x, W, b, the shift and the residual for
/// Σ r·(conv(x) + shift[n, c] + residual), through `conv2d_module_shift` then
/// `conv2d_module_residual` (the ResBlock's two fused convs), on autodiff flex.
fn fused_conv_run(
    conv: &burn::nn::conv::Conv2d,
    batch: usize,
    c_in: usize,
    hw: usize,
) -> Vec<Vec<f32>> {
    let device = Device::flex().autodiff();
    // The same weights as tracked parameters on the autodiff device.
    let mut conv = conv.clone();
    let on_device = |t: Tensor<4>| Tensor::<4>::from_data(t.into_data(), &device).require_grad();
    conv.weight = Param::from_tensor(on_device(conv.weight.val()));
    conv.bias = conv.bias.map(|b| {
        Param::from_tensor(Tensor::<1>::from_data(b.val().into_data(), &device).require_grad())
    });
    let x = random(11, [batch, c_in, hw, hw], &device).require_grad();
    let c_out = conv.weight.dims()[0];
    let shift = random(12, [batch, c_out], &device).require_grad();
    let y = conv2d_module_shift(&conv, x.clone(), shift.clone());
    let residual = random(13, y.dims(), &device).require_grad();
    let z = conv2d_module_residual(&conv_same_out(&conv, &device), y, residual.clone());
    let r = random(14, z.dims(), &device);
    let grads = (z.clone() * r).sum().backward();
    let v = |t: Option<Tensor<4>>| to_vec(t.expect("gradient")).expect("values");
    vec![
        to_vec(z.inner()).expect("values"),
        v(x.grad(&grads)),
        v(conv.weight.val().grad(&grads)),
        conv.bias.as_ref().map_or_else(Vec::new, |b| {
            to_vec(b.val().grad(&grads).expect("bias gradient")).expect("values")
        }),
        to_vec(shift.grad(&grads).expect("gradient")).expect("values"),
        v(residual.grad(&grads)),
    ]
}

/// A 3×3, stride-1, padding-1 conv from the given conv's output channels to themselves (the
/// second conv of a ResBlock), seeded.
fn conv_same_out(conv: &burn::nn::conv::Conv2d, device: &Device) -> burn::nn::conv::Conv2d {
    let c = conv.weight.dims()[0];
    let mut second = burn::nn::conv::Conv2dConfig::new([c, c], [3, 3])
        .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device);
    second.weight = Param::from_tensor(random(15, [c, c, 3, 3], device));
    second.bias = Some(Param::from_tensor(random(16, [c], device)));
    second
}

#[test]
fn conv_with_shift_and_residual_matches_the_composed_ops() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let device = Device::flex();
    // (c_in, c_out, kernel, stride, padding, hw, batch): the ResBlock's 3×3 conv (batch 5: two
    // thread groups of unequal size), a strided conv (the im2col path) and a 1×1 without bias.
    let cases = [
        (3, 4, 3, 1, 1, 7, 5),
        (2, 3, 3, 2, 1, 13, 3),
        (4, 2, 1, 1, 0, 9, 64),
    ];
    for (i, &(c_in, c_out, k, stride, pad, hw, batch)) in cases.iter().enumerate() {
        let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(i != 2)
            .init(&device);
        conv.weight = Param::from_tensor(random(17, [c_out, c_in, k, k], &device));
        if let Some(b) = &mut conv.bias {
            *b = Param::from_tensor(random(18, [c_out], &device));
        }
        let fast = fused_conv_run(&conv, batch, c_in, hw);
        let stock = with_stock_ops(|| fused_conv_run(&conv, batch, c_in, hw));
        let names = ["output", "∂x", "∂W", "∂b", "∂shift", "∂residual"];
        for ((name, f), s) in names.iter().zip(&fast).zip(&stock) {
            let e = rel_err(f, s);
            assert!(e <= 1e-4, "case {i}, {name}: relative error {e}");
        }
        // The shift's gradient is per image: Σ over pixels of the upstream gradient, not a
        // single row repeated.
        let shift_grad = &fast[4];
        assert_eq!(shift_grad.len(), batch * c_out);
        assert!(shift_grad[..c_out] != shift_grad[c_out..2 * c_out]);
    }
}

/// The extension op called directly with what difflab's kernel does not take (a dilation of 2)
/// falls back to burn's conv plus the broadcast adds, on flex and with its gradients on autodiff.
#[test]
fn the_fused_conv_op_falls_back_to_burns_ops_for_a_dilated_conv() {
    use burn::backend::Dispatch;
    use difflab_kernels::DifflabKernels;
    let device = Device::flex().autodiff();
    let x = random(21, [2, 3, 9, 9], &device).require_grad();
    let w = random(22, [4, 3, 3, 3], &device).require_grad();
    let shift = random(23, [2, 4], &device).require_grad();
    let residual = random(24, [2, 4, 5, 5], &device).require_grad();
    let options = ConvOptions::new([1, 1], [0, 0], [2, 2], 1);
    let fused =
        Tensor::<4>::from_dispatch(<Dispatch as DifflabKernels>::difflab_conv2d_bias_residual(
            x.clone().into_dispatch(),
            w.clone().into_dispatch(),
            shift.clone().into_dispatch(),
            residual.clone().into_dispatch(),
            options.clone(),
        ));
    let composed = burn::tensor::module::conv2d(x.clone(), w.clone(), None, options)
        + shift.clone().reshape([2, 4, 1, 1])
        + residual.clone();
    assert_eq!(fused.dims(), [2, 4, 5, 5]);
    let r = random(25, [2, 4, 5, 5], &device);
    let g1 = (fused.clone() * r.clone()).sum().backward();
    let g2 = (composed.clone() * r).sum().backward();
    let v = |t: Tensor<4>| to_vec(t.inner()).expect("values");
    assert!(rel_err(&v(fused), &v(composed)) <= 1e-5);
    for (a, b) in [
        (x.grad(&g1), x.grad(&g2)),
        (w.grad(&g1), w.grad(&g2)),
        (residual.grad(&g1), residual.grad(&g2)),
    ] {
        let (a, b) = (a.expect("gradient"), b.expect("gradient"));
        assert!(rel_err(&to_vec(a).expect("values"), &to_vec(b).expect("values")) <= 1e-5);
    }
    let (a, b) = (
        shift.grad(&g1).expect("gradient"),
        shift.grad(&g2).expect("gradient"),
    );
    assert!(rel_err(&to_vec(a).expect("values"), &to_vec(b).expect("values")) <= 1e-5);
}

/// Output, ∂/∂x, ∂/∂γ, ∂/∂β of Σ r·silu(GroupNorm(x)) for a fixed random r.
fn norm_run(shape: [usize; 4], groups: usize, silu_after: bool, fused: bool) -> [Vec<f32>; 4] {
    let device = Device::flex().autodiff();
    let mut norm = GroupNormConfig::new(groups, shape[1]).init(&device);
    // Not the initial γ = 1, β = 0, so the affine part is exercised.
    norm.gamma = Some(Param::from_tensor(
        random(11, [shape[1]], &device) * 0.5 + 1.0,
    ));
    norm.beta = Some(Param::from_tensor(random(12, [shape[1]], &device) * 0.5));
    // An offset and a scale, as real activations have.
    let x = (random(13, shape, &device) * 3.0 + 2.0).require_grad();
    let y = if fused {
        group_norm_silu(&norm, x.clone(), silu_after)
    } else {
        let y = norm.forward(x.clone());
        if silu_after { silu(y) } else { y }
    };
    let r = random(14, shape, &device);
    let grads = (y.clone() * r).sum().backward();
    let grad = |p: &Option<Param<Tensor<1>>>| {
        let p = p.as_ref().expect("affine");
        to_vec(p.val().grad(&grads).expect("parameter gradient")).expect("values")
    };
    [
        to_vec(y.inner()).expect("values"),
        to_vec(x.grad(&grads).expect("input gradient")).expect("values"),
        grad(&norm.gamma),
        grad(&norm.beta),
    ]
}

#[test]
fn group_norm_silu_matches_the_composed_ops() {
    let names = [
        "output",
        "input gradient",
        "gamma gradient",
        "beta gradient",
    ];
    for (shape, groups) in [([3, 8, 5, 7], 4), ([64, 32, 7, 7], 8), ([2, 6, 13, 13], 6)] {
        for silu_after in [true, false] {
            let fast = norm_run(shape, groups, silu_after, true);
            let stock = norm_run(shape, groups, silu_after, false);
            for (k, name) in names.iter().enumerate() {
                let e = rel_err(&fast[k], &stock[k]);
                assert!(
                    e <= 1e-4,
                    "{shape:?}/{groups}, silu {silu_after}: {name} relative error {e}"
                );
            }
        }
    }
}

/// Losses of `steps` training steps of `unet` on MNIST digits (batch `batch`, seed 0).
fn losses(unet: &UNetConfig, batch: usize, steps: usize) -> Vec<f32> {
    let mnist = difflab::data::mnist::Mnist::embedded().expect("mnist");
    let data = ImageSet::new(&mnist.images(512), [1, 28, 28]).expect("images");
    let config = TrainConfig {
        steps: 1000,
        batch,
        ..TrainConfig::default()
    };
    let mut t = UNetTrainer::new(data, unet.clone(), config, &Device::flex()).expect("trainer");
    (0..steps).map(|_| t.train_step().expect("step")).collect()
}

fn assert_curves_agree(fast: &[f32], stock: &[f32]) {
    for (k, (a, b)) in fast.iter().zip(stock).enumerate() {
        let e = (a - b).abs() / b.abs();
        assert!(
            e <= 1e-3,
            "step {k}: loss {a} with the kernels, {b} on stock ops ({e:.2e})"
        );
    }
}

#[test]
fn training_with_the_kernels_follows_the_stock_loss_curve() {
    // A small net (base 8, multipliers [1, 2], attention) for 50 steps of batch 8.
    let unet = UNetConfig::new()
        .with_base_channels(8)
        .with_channel_mult(vec![1, 2])
        .with_groups(4);
    let fast = losses(&unet, 8, 50);
    let stock = with_stock_ops(|| losses(&unet, 8, 50));
    assert_curves_agree(&fast, &stock);
    assert!(
        fast[45..].iter().sum::<f32>() < fast[..5].iter().sum::<f32>(),
        "it learns: {fast:?}"
    );
}

/// The check on the reference net (base 32, [1, 2], batch 64, 50 steps): about two
/// minutes, most of it on stock ops. `cargo test --test core reference_net -- --ignored`
#[test]
#[ignore = "about two minutes: cargo test --test core reference_net -- --ignored"]
fn reference_net_training_follows_the_stock_loss_curve() {
    let unet = UNetConfig::new().with_channel_mult(vec![1, 2]);
    let fast = losses(&unet, 64, 50);
    let stock = with_stock_ops(|| losses(&unet, 64, 50));
    assert_curves_agree(&fast, &stock);
}

#[test]
fn the_shipped_unet_samples_as_on_stock_ops() {
    let device = Device::flex();
    let (model, config) = difflab::model::unet::shipped(&device).expect("shipped weights");
    let m = UNetDenoiser { model, config };
    let scheduler = crate::common::ddim10(m.prediction_type());
    let cancel = AtomicBool::new(false);
    let run = || {
        let x = sample_seeded(&m, &scheduler, 7, 4, &cancel, &device, |_| {})
            .expect("sample")
            .expect("not cancelled");
        to_vec(x).expect("values")
    };
    let fast = run();
    let stock = with_stock_ops(run);
    let d = fast
        .iter()
        .zip(&stock)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        d <= 1e-4,
        "DDIM-10 with the kernels differs from stock ops by {d}"
    );
    // And one forward pass, unclipped.
    let x = tensor4(gaussian(9, 0, 2 * 784), [2, 1, 28, 28], &device);
    let a = to_vec(m.model.forward(x.clone(), &[10, 900])).expect("a");
    let b = with_stock_ops(|| to_vec(m.model.forward(x, &[10, 900])).expect("b"));
    assert!(rel_err(&a, &b) <= 1e-4);
}

#[test]
fn the_vectorised_exp_is_within_a_few_ulp_of_std() {
    let mut worst = 0.0f32;
    let mut x = -87.0f32;
    while x < 88.0 {
        let (a, b) = (exp_f32(x), x.exp());
        worst = worst.max(((a - b) / b).abs());
        x += 0.001_37;
    }
    assert!(worst < 4.0 * f32::EPSILON, "relative error {worst}");
    assert!(exp_f32(f32::NAN).is_nan());
    assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(1000.0) > 1e38);
    assert_eq!(exp_f32(0.0), 1.0);
}

#[test]
fn upsample2_matches_repeat_forward_and_backward() {
    let run = || {
        let device = Device::flex().autodiff();
        let x = random(21, [3, 5, 7, 6], &device).require_grad();
        let y = difflab_kernels::upsample2(x.clone());
        let r = random(22, [3, 5, 14, 12], &device);
        let grads = (y.clone() * r).sum().backward();
        let gx = to_vec(x.grad(&grads).expect("input gradient")).expect("values");
        (to_vec(y.inner()).expect("values"), gx)
    };
    let (y, gx) = run();
    let (ys, gxs) = with_stock_ops(run);
    assert_eq!(y, ys, "the same pixels, copied");
    assert!(rel_err(&gx, &gxs) <= 1e-6);
    // Each output pixel is its block's source: y[.., 2i+a, 2j+b] = x[.., i, j].
    let x = to_vec(random::<4>(21, [3, 5, 7, 6], &Device::flex())).expect("x");
    assert_eq!(y[12 * 3 + 5], x[6 + 2]);
}

#[test]
fn attention_matches_the_composed_ops_forward_and_backward() {
    let run = || {
        let device = Device::flex().autodiff();
        // 3 images, 49 tokens (7×7), C = 8: Q, K, V side by side.
        let qkv = (random(31, [3, 49, 24], &device) * 2.0).require_grad();
        let out = difflab_kernels::attention(qkv.clone(), 8);
        let r = random(32, [3, 49, 8], &device);
        let grads = (out.clone() * r).sum().backward();
        let g = to_vec(qkv.grad(&grads).expect("gradient")).expect("values");
        (to_vec(out.inner()).expect("values"), g)
    };
    let (out, g) = run();
    let (out_s, g_s) = with_stock_ops(run);
    assert_eq!(out.len(), 3 * 49 * 8);
    assert!(
        rel_err(&out, &out_s) <= 1e-5,
        "output {}",
        rel_err(&out, &out_s)
    );
    assert!(rel_err(&g, &g_s) <= 1e-4, "gradient {}", rel_err(&g, &g_s));
    // Q, K and V each get a gradient.
    for part in 0..3 {
        assert!(
            g.chunks(8)
                .skip(part)
                .step_by(3)
                .flatten()
                .any(|v| *v != 0.0)
        );
    }
}

#[test]
fn cat_channels_matches_burn_cat_forward_and_backward() {
    let run = || {
        let device = Device::flex().autodiff();
        let a = random(41, [4, 3, 5, 6], &device).require_grad();
        let b = random(42, [4, 2, 5, 6], &device).require_grad();
        let y = difflab_kernels::cat_channels(a.clone(), b.clone());
        let r = random(43, [4, 5, 5, 6], &device);
        let grads = (y.clone() * r).sum().backward();
        let ga = to_vec(a.grad(&grads).expect("a")).expect("values");
        let gb = to_vec(b.grad(&grads).expect("b")).expect("values");
        (to_vec(y.inner()).expect("values"), ga, gb)
    };
    let fast = run();
    let stock = with_stock_ops(run);
    assert_eq!(fast, stock, "copies are exact");
    assert_eq!(fast.0.len(), 4 * 5 * 30);
}
