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

use crate::attention::{AttentionGeometry, attention_backward, attention_forward};
use crate::conv::{ConvGeometry, Needs, conv2d_backward, conv2d_forward};
use crate::norm::{NormGeometry, group_norm_backward, group_norm_forward};
use crate::resample::{cat_channels, split_channels, upsample2_backward, upsample2_forward};

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

    /// Single-head attention softmax(Q·Kᵀ/√C)·V from packed projections `[B, T, 3C]`, giving
    /// `[B, T, C]`.
    fn difflab_attention(qkv: FloatTensor<Self>, channels: usize) -> FloatTensor<Self>;

    /// `[N, A, H, W]` and `[N, B, H, W]` concatenated along the channels.
    fn difflab_cat_channels(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Nearest-neighbour ×2 upsampling of `[N, C, H, W]`.
    fn difflab_upsample2(x: FloatTensor<Self>) -> FloatTensor<Self>;

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
    let mut out = crate::zeroed(g.batch * g.out_len());
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

/// ×2 nearest upsampling on flex.
fn upsample2_flex(x: FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let d = dims(&x);
    assert!(
        d.len() >= 3 && x.dtype() == DType::F32,
        "difflab upsample: f32 [N, C, H, W], not {d:?} {:?}",
        x.dtype()
    );
    let (h, w) = (d[d.len() - 2], d[d.len() - 1]);
    let mut out = crate::zeroed(4 * x.layout().num_elements());
    upsample2_forward(f32s(&x), [h, w], &mut out);
    let mut od = d.clone();
    let n = od.len();
    od[n - 2] = 2 * h;
    od[n - 1] = 2 * w;
    tensor(out, &od)
}

fn attention_geometry(qkv: &FlexTensor, channels: usize) -> AttentionGeometry {
    let d = dims(qkv);
    assert!(
        d.len() == 3 && channels > 0 && d[2] == 3 * channels && qkv.dtype() == DType::F32,
        "difflab attention: f32 [B, T, 3·{channels}], not {d:?} {:?}",
        qkv.dtype()
    );
    AttentionGeometry {
        batch: d[0],
        tokens: d[1],
        channels,
    }
}

/// Attention on flex; returns (output, probabilities).
fn attention_flex(qkv: FlexTensor, channels: usize) -> (FlexTensor, FlexTensor) {
    let g = attention_geometry(&qkv, channels);
    let qkv = contiguous(qkv);
    let mut out = crate::zeroed(g.batch * g.tokens * g.channels);
    let mut probs = vec![0.0f32; g.batch * g.tokens * g.tokens];
    attention_forward(f32s(&qkv), &g, &mut out, &mut probs);
    (
        tensor(out, &[g.batch, g.tokens, g.channels]),
        tensor(probs, &[g.batch, g.tokens, g.tokens]),
    )
}

/// The per-image lengths of a channel concatenation, and the output's shape.
fn cat_shape(a: &FlexTensor, b: &FlexTensor) -> ([usize; 2], Vec<usize>) {
    let (da, db) = (dims(a), dims(b));
    assert!(
        da.len() >= 2
            && da.len() == db.len()
            && da[0] == db[0]
            && da[2..] == db[2..]
            && a.dtype() == DType::F32
            && b.dtype() == DType::F32,
        "difflab cat: f32 [N, A, ...] and [N, B, ...], not {da:?} and {db:?}"
    );
    let rest: usize = da[2..].iter().product();
    let mut out = da.clone();
    out[1] += db[1];
    ([da[1] * rest, db[1] * rest], out)
}

fn cat_flex(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    let (lens, shape) = cat_shape(&a, &b);
    let (a, b) = (contiguous(a), contiguous(b));
    let mut out = crate::zeroed(a.layout().num_elements() + b.layout().num_elements());
    cat_channels(f32s(&a), f32s(&b), lens, &mut out);
    tensor(out, &shape)
}

impl DifflabKernels for Flex {
    fn difflab_cat_channels(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        cat_flex(a, b)
    }

    fn difflab_attention(qkv: FlexTensor, channels: usize) -> FlexTensor {
        attention_flex(qkv, channels).0
    }

    fn difflab_upsample2(x: FlexTensor) -> FlexTensor {
        upsample2_flex(x)
    }

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
    let mut y = crate::zeroed(x.layout().num_elements());
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

/// What attention's backward pass keeps: the packed projections and the probabilities.
#[derive(Clone, Debug)]
struct AttentionState {
    qkv: FlexTensor,
    probs: FlexTensor,
    channels: usize,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 1> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = contiguous(grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let s = ops.state;
            let g = attention_geometry(&s.qkv, s.channels);
            let qkv = contiguous(s.qkv);
            let mut dqkv = crate::zeroed(qkv.layout().num_elements());
            attention_backward(f32s(&qkv), f32s(&s.probs), f32s(&dout), &g, &mut dqkv);
            grads.register::<Flex>(node.id, tensor(dqkv, &dims(&qkv)));
        }
    }
}

/// The concatenation's backward pass needs only the two shapes.
#[derive(Debug)]
struct CatBackward;

impl Backward<Flex, 2> for CatBackward {
    type State = (Vec<usize>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (da_shape, db_shape) = ops.state;
        let (a_len, b_len) = (
            da_shape.iter().product::<usize>(),
            db_shape.iter().product::<usize>(),
        );
        let n = da_shape[0].max(1);
        let mut da = crate::zeroed(a_len);
        let mut db = crate::zeroed(b_len);
        split_channels(f32s(&dy), [a_len / n, b_len / n], &mut da, &mut db);
        let [pa, pb] = ops.parents;
        if let Some(node) = pa {
            grads.register::<Flex>(node.id, tensor(da, &da_shape));
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, tensor(db, &db_shape));
        }
    }
}

/// Upsampling's backward pass needs only the input's shape.
#[derive(Debug)]
struct UpsampleBackward;

impl Backward<Flex, 1> for UpsampleBackward {
    type State = Vec<usize>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let d = ops.state;
            let hw = [d[d.len() - 2], d[d.len() - 1]];
            let mut dx = crate::zeroed(d.iter().product());
            upsample2_backward(f32s(&dy), hw, &mut dx);
            grads.register::<Flex>(node.id, tensor(dx, &d));
        }
    }
}

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
    fn difflab_cat_channels(a: AdTensor<C>, b: AdTensor<C>) -> AdTensor<C> {
        match CatBackward
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = (dims(a.primitive()), dims(b.primitive()));
                prep.finish(
                    state,
                    cat_flex(a.primitive().clone(), b.primitive().clone()),
                )
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(cat_flex(a.primitive().clone(), b.primitive().clone()))
            }
        }
    }

    fn difflab_attention(qkv: AdTensor<C>, channels: usize) -> AdTensor<C> {
        match AttentionBackward
            .prepare::<C>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, probs) = attention_flex(qkv.primitive().clone(), channels);
                let state = AttentionState {
                    qkv: qkv.primitive().clone(),
                    probs,
                    channels,
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(attention_flex(qkv.primitive().clone(), channels).0)
            }
        }
    }

    fn difflab_upsample2(x: AdTensor<C>) -> AdTensor<C> {
        match UpsampleBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let d = dims(x.primitive());
                prep.finish(d, upsample2_flex(x.primitive().clone()))
            }
            OpsKind::UnTracked(prep) => prep.finish(upsample2_flex(x.primitive().clone())),
        }
    }

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
