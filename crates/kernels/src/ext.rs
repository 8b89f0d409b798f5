//! The kernels as a burn backend extension: ops on `Flex` and on `Autodiff<Flex>` (with their
//! backward passes), reached through burn's `Dispatch` like any built-in op.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Bytes, Shape};

use crate::conv::{ConvGeometry, Needs, conv2d_backward, conv2d_forward};
use crate::norm::{NormGeometry, group_norm_backward, group_norm_forward};

/// difflab's own ops. Call them through [`crate::conv2d`] and [`crate::group_norm_silu`], which
/// route here only on flex (plain or autodiff) and use burn's ops elsewhere.
#[backend_extension(Flex, Autodiff)]
pub trait DifflabKernels: Backend {
    /// conv2d without bias (groups = 1, dilation = 1; anything else goes to burn's op).
    fn difflab_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// conv2d with bias. (A separate op: the extension macro of burn 0.22.1 does not unwrap an
    /// `Option` of tensors.)
    fn difflab_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// GroupNorm with affine γ, β over `[N, C, H, W]`, then SiLU when `silu`.
    fn difflab_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> FloatTensor<Self>;
}

/// A contiguous f32 view of `t` (a copy only when `t` is a strided view).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("difflab kernels: a contiguous f32 tensor (made so by `contiguous`)")
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().clone().into()
}

fn dims4(t: &FlexTensor) -> Option<[usize; 4]> {
    <[usize; 4]>::try_from(dims(t)).ok()
}

fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}

/// The geometry when difflab's kernel handles this call: f32, groups 1, dilation 1.
fn conv_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<ConvGeometry> {
    let f32_only = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    if !f32_only || options.groups != 1 || options.dilation != [1, 1] {
        return None;
    }
    ConvGeometry::new(dims4(x)?, dims4(weight)?, options.stride, options.padding)
}

fn conv_forward(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    g: &ConvGeometry,
) -> FlexTensor {
    let (x, weight, bias) = (contiguous(x), contiguous(weight), bias.map(contiguous));
    let mut out = vec![0.0f32; g.batch * g.out_len()];
    conv2d_forward(
        f32s(&x),
        f32s(&weight),
        bias.as_ref().map(f32s),
        g,
        &mut out,
    );
    tensor(out, &[g.batch, g.c_out, g.out_hw[0], g.out_hw[1]])
}

fn flex_conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
) -> FlexTensor {
    match conv_geometry(&x, &weight, bias.as_ref(), &options) {
        Some(g) => conv_forward(x, weight, bias, &g),
        None => <Flex as ModuleOps<Flex>>::conv2d(x, weight, bias, options),
    }
}

impl DifflabKernels for Flex {
    fn difflab_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        flex_conv2d(x, weight, None, options)
    }

    fn difflab_conv2d_bias(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, Some(bias), options)
    }

    fn difflab_group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> FlexTensor {
        group_norm_flex(x, gamma, beta, groups, epsilon, silu).0
    }
}

fn norm_geometry(x: &FlexTensor, groups: usize) -> NormGeometry {
    let d = dims(x);
    let g = NormGeometry {
        batch: d.first().copied().unwrap_or(0),
        channels: d.get(1).copied().unwrap_or(0),
        spatial: d.iter().skip(2).product(),
        groups,
    };
    assert!(
        d.len() >= 3 && g.is_valid() && x.dtype() == DType::F32,
        "difflab group norm: f32 [N, C, ...] with C divisible by {groups}, not {d:?} {:?}",
        x.dtype()
    );
    g
}

/// The forward pass; returns (output, stats).
fn group_norm_flex(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    groups: usize,
    epsilon: f64,
    silu: bool,
) -> (FlexTensor, FlexTensor) {
    let g = norm_geometry(&x, groups);
    let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
    let mut y = vec![0.0f32; x.layout().num_elements()];
    let mut stats = vec![0.0f32; 2 * g.batch * g.groups];
    group_norm_forward(
        f32s(&x),
        f32s(&gamma),
        f32s(&beta),
        &g,
        epsilon,
        silu,
        &mut y,
        &mut stats,
    );
    let len = stats.len();
    (tensor(y, &dims(&x)), tensor(stats, &[len]))
}

/// What the conv's backward pass keeps from the forward.
#[derive(Clone, Debug)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: ConvGeometry,
}

/// Computes the gradients the conv's parents (x, weight and, when N = 3, bias) need and
/// registers them.
fn conv_backward<const N: usize>(ops: Ops<ConvState, N>, grads: &mut Gradients) {
    let Ops {
        parents,
        node,
        state,
    } = ops;
    let dy = contiguous(grads.consume::<Flex>(&node));
    let needs = Needs {
        x: parents[0].is_some(),
        weight: parents.get(1).is_some_and(Option::is_some),
        bias: parents.get(2).is_some_and(Option::is_some),
    };
    let g = state.geometry;
    let (x, w) = (contiguous(state.x), contiguous(state.weight));
    let out = conv2d_backward(f32s(&x), f32s(&w), f32s(&dy), &g, needs);
    let [kh, kw] = g.kernel;
    let shapes = [
        vec![g.batch, g.c_in, g.in_hw[0], g.in_hw[1]],
        vec![g.c_out, g.c_in, kh, kw],
        vec![g.c_out],
    ];
    for ((parent, grad), shape) in parents
        .iter()
        .zip([out.x, out.weight, out.bias])
        .zip(shapes)
    {
        if let (Some(node), Some(grad)) = (parent, grad) {
            grads.register::<Flex>(node.id, tensor(grad, &shape));
        }
    }
}

#[derive(Debug)]
struct ConvWithBias;

impl Backward<Flex, 3> for ConvWithBias {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_backward(ops, grads);
    }
}

#[derive(Debug)]
struct ConvNoBias;

impl Backward<Flex, 2> for ConvNoBias {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_backward(ops, grads);
    }
}

/// What GroupNorm's backward pass keeps from the forward.
#[derive(Clone, Debug)]
struct NormState {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    stats: FlexTensor,
    groups: usize,
    silu: bool,
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let g = norm_geometry(&s.x, s.groups);
        let out = group_norm_backward(
            f32s(&s.x),
            f32s(&s.gamma),
            f32s(&s.beta),
            f32s(&s.stats),
            f32s(&dy),
            &g,
            s.silu,
        );
        let [px, pg, pb] = ops.parents;
        if let Some(node) = px {
            grads.register::<Flex>(node.id, tensor(out.x, &dims(&s.x)));
        }
        if let Some(node) = pg {
            grads.register::<Flex>(node.id, tensor(out.gamma, &[g.channels]));
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, tensor(out.beta, &[g.channels]));
        }
    }
}

type AdTensor<C> = FloatTensor<Autodiff<Flex, C>>;

/// conv2d on autodiff flex: the forward on difflab's kernel, and [`conv_backward`] recorded.
fn autodiff_conv2d<C: CheckpointStrategy>(
    x: AdTensor<C>,
    weight: AdTensor<C>,
    bias: Option<AdTensor<C>>,
    options: ConvOptions<2>,
) -> AdTensor<C> {
    let Some(geometry) = conv_geometry(
        x.primitive(),
        weight.primitive(),
        bias.as_ref().map(|b| b.primitive()),
        &options,
    ) else {
        return <Autodiff<Flex, C> as ModuleOps<Autodiff<Flex, C>>>::conv2d(
            x, weight, bias, options,
        );
    };
    let state = |x: &AdTensor<C>, w: &AdTensor<C>| ConvState {
        x: x.primitive().clone(),
        weight: w.primitive().clone(),
        geometry,
    };
    let forward = |x: &AdTensor<C>, w: &AdTensor<C>, b: Option<&AdTensor<C>>| {
        conv_forward(
            x.primitive().clone(),
            w.primitive().clone(),
            b.map(|b| b.primitive().clone()),
            &geometry,
        )
    };
    match bias {
        Some(bias) => match ConvWithBias
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(state(&x, &weight), forward(&x, &weight, Some(&bias)))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &weight, Some(&bias))),
        },
        None => match ConvNoBias
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(&x, &weight), forward(&x, &weight, None)),
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &weight, None)),
        },
    }
}

impl<C: CheckpointStrategy> DifflabKernels for Autodiff<Flex, C> {
    fn difflab_conv2d(x: AdTensor<C>, weight: AdTensor<C>, options: ConvOptions<2>) -> AdTensor<C> {
        autodiff_conv2d::<C>(x, weight, None, options)
    }

    fn difflab_conv2d_bias(
        x: AdTensor<C>,
        weight: AdTensor<C>,
        bias: AdTensor<C>,
        options: ConvOptions<2>,
    ) -> AdTensor<C> {
        autodiff_conv2d::<C>(x, weight, Some(bias), options)
    }

    fn difflab_group_norm(
        x: AdTensor<C>,
        gamma: AdTensor<C>,
        beta: AdTensor<C>,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> AdTensor<C> {
        let run = || {
            group_norm_flex(
                x.primitive().clone(),
                gamma.primitive().clone(),
                beta.primitive().clone(),
                groups,
                epsilon,
                silu,
            )
        };
        match NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, stats) = run();
                let state = NormState {
                    x: x.primitive().clone(),
                    gamma: gamma.primitive().clone(),
                    beta: beta.primitive().clone(),
                    stats,
                    groups,
                    silu,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(run().0),
        }
    }
}
