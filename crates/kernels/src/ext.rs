//! The kernels as a burn backend extension: ops on `Flex` and on `Autodiff<Flex>` (with their
//! backward passes), reached through burn's `Dispatch` like any built-in op.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Bytes, Shape};

use crate::attention::{AttentionGeometry, attention_backward, attention_forward};
use crate::conv::{
    Addends, ConvGeometry, Needs, bias_grad_per_image, conv2d_backward, conv2d_forward_uninit,
};
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

    /// conv2d with bias, `[C_out]` or one per image, `[N, C_out]`. (A separate op: the
    /// extension macro of burn 0.22.1 does not unwrap an `Option` of tensors.)
    fn difflab_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// conv2d(x) + bias + residual in one pass: bias as in [`Self::difflab_conv2d_bias`],
    /// residual `[N, C_out, H_out, W_out]` (a skip connection).
    fn difflab_conv2d_bias_residual(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
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

/// The geometry when difflab's kernel handles this call: f32, groups 1, dilation 1, a bias of
/// `[C_out]` or `[N, C_out]` and a residual of the output's shape.
fn conv_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    residual: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<ConvGeometry> {
    let f32_only = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32)
        && residual.is_none_or(|r| r.dtype() == DType::F32);
    if !f32_only || options.groups != 1 || options.dilation != [1, 1] {
        return None;
    }
    let g = ConvGeometry::new(dims4(x)?, dims4(weight)?, options.stride, options.padding)?;
    let bias_fits = bias.is_none_or(|b| {
        let d = dims(b);
        d == [g.c_out] || d == [g.batch, g.c_out]
    });
    let residual_fits =
        residual.is_none_or(|r| dims4(r) == Some([g.batch, g.c_out, g.out_hw[0], g.out_hw[1]]));
    (bias_fits && residual_fits).then_some(g)
}

/// Whether a bias tensor is one row per image (`[N, C_out]`).
fn per_image(bias: &FlexTensor) -> bool {
    dims(bias).len() == 2
}

fn conv_forward(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    residual: Option<FlexTensor>,
    g: &ConvGeometry,
) -> FlexTensor {
    let (x, weight) = (contiguous(x), contiguous(weight));
    let (bias, residual) = (bias.map(contiguous), residual.map(contiguous));
    let add = Addends {
        bias: bias.as_ref().map(f32s),
        residual: residual.as_ref().map(f32s),
    };
    // SAFETY: the conv writes every element of its output.
    let out = unsafe {
        crate::written_by(g.batch * g.out_len(), |out| {
            conv2d_forward_uninit(f32s(&x), f32s(&weight), add, g, out);
        })
    };
    tensor(out, &[g.batch, g.c_out, g.out_hw[0], g.out_hw[1]])
}

/// conv2d(x) + bias + residual with the backend's own ops, for what difflab's kernel does not
/// take (other dtypes, groups or dilations).
fn unfused<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    residual: Option<FloatTensor<B>>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    // A `[C_out]` bias goes to the conv itself, a `[N, C_out]` one is added after it.
    let (shared_bias, bias) = match bias {
        Some(b) if b.shape().num_dims() == 1 => (Some(b), None),
        other => (None, other),
    };
    let mut y = B::conv2d(x, weight, shared_bias, options);
    if let Some(b) = bias {
        // [N, C_out] → [N, C_out, 1, 1], broadcast over the pixels.
        let d = b.shape();
        let rows = Shape::from(vec![d[0], d[1], 1, 1]);
        y = B::float_add(y, B::float_reshape(b, rows));
    }
    match residual {
        Some(r) => B::float_add(y, r),
        None => y,
    }
}

fn flex_conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    residual: Option<FlexTensor>,
    options: ConvOptions<2>,
) -> FlexTensor {
    match conv_geometry(&x, &weight, bias.as_ref(), residual.as_ref(), &options) {
        Some(g) => conv_forward(x, weight, bias, residual, &g),
        None => unfused::<Flex>(x, weight, bias, residual, options),
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
    // SAFETY: upsampling writes every output element.
    let out = unsafe {
        crate::written_by(4 * x.layout().num_elements(), |out| {
            upsample2_forward(f32s(&x), [h, w], out);
        })
    };
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
    // SAFETY: the concatenation writes every output element.
    let out = unsafe {
        crate::written_by(
            a.layout().num_elements() + b.layout().num_elements(),
            |out| {
                cat_channels(f32s(&a), f32s(&b), lens, out);
            },
        )
    };
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
        flex_conv2d(x, weight, None, None, options)
    }

    fn difflab_conv2d_bias(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, Some(bias), None, options)
    }

    fn difflab_conv2d_bias_residual(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, Some(bias), Some(residual), options)
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
    let mut stats = vec![0.0f32; 2 * g.batch * g.groups];
    // SAFETY: the norm writes every output element.
    let y = unsafe {
        crate::written_by(x.layout().num_elements(), |y| {
            group_norm_forward(
                f32s(&x),
                f32s(&gamma),
                f32s(&beta),
                &g,
                epsilon,
                silu,
                y,
                &mut stats,
            );
        })
    };
    let len = stats.len();
    (tensor(y, &dims(&x)), tensor(stats, &[len]))
}

/// What the conv's backward pass keeps from the forward.
#[derive(Clone, Debug)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: ConvGeometry,
    /// The bias is `[N, C_out]` (one row per image), not `[C_out]`.
    bias_per_image: bool,
}

/// Computes the gradients the conv's parents (x, weight and, when N ≥ 3, bias, and when N = 4
/// the residual) need and registers them.
fn conv_backward<const N: usize>(ops: Ops<ConvState, N>, grads: &mut Gradients) {
    let Ops {
        parents,
        node,
        state,
    } = ops;
    let dy = contiguous(grads.consume::<Flex>(&node));
    let wants = |i: usize| parents.get(i).is_some_and(Option::is_some);
    let needs = Needs {
        x: wants(0),
        weight: wants(1),
        bias: wants(2) && !state.bias_per_image,
    };
    let g = state.geometry;
    let (x, w) = (contiguous(state.x), contiguous(state.weight));
    let mut out = conv2d_backward(f32s(&x), f32s(&w), f32s(&dy), &g, needs);
    if wants(2) && state.bias_per_image {
        out.bias = Some(bias_grad_per_image(f32s(&dy), &g));
    }
    let [kh, kw] = g.kernel;
    let shapes = [
        vec![g.batch, g.c_in, g.in_hw[0], g.in_hw[1]],
        vec![g.c_out, g.c_in, kh, kw],
        if state.bias_per_image {
            vec![g.batch, g.c_out]
        } else {
            vec![g.c_out]
        },
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
    // The residual's gradient is dy itself (shared storage, no copy).
    if let Some(Some(node)) = parents.get(3) {
        grads.register::<Flex>(node.id, dy);
    }
}

/// The conv's backward node, for 2 (x, W), 3 (+ bias) or 4 (+ residual) parents.
#[derive(Debug)]
struct ConvBackward;

impl<const N: usize> Backward<Flex, N> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
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
    residual: Option<AdTensor<C>>,
    options: ConvOptions<2>,
) -> AdTensor<C> {
    let Some(geometry) = conv_geometry(
        x.primitive(),
        weight.primitive(),
        bias.as_ref().map(|b| b.primitive()),
        residual.as_ref().map(|r| r.primitive()),
        &options,
    ) else {
        return unfused::<Autodiff<Flex, C>>(x, weight, bias, residual, options);
    };
    let bias_per_image = bias.as_ref().is_some_and(|b| per_image(b.primitive()));
    let state = |x: &AdTensor<C>, w: &AdTensor<C>| ConvState {
        x: x.primitive().clone(),
        weight: w.primitive().clone(),
        geometry,
        bias_per_image,
    };
    let forward =
        |x: &AdTensor<C>, w: &AdTensor<C>, b: Option<&AdTensor<C>>, r: Option<&AdTensor<C>>| {
            conv_forward(
                x.primitive().clone(),
                w.primitive().clone(),
                b.map(|b| b.primitive().clone()),
                r.map(|r| r.primitive().clone()),
                &geometry,
            )
        };
    match (bias, residual) {
        (Some(bias), Some(residual)) => match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node(), residual.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                state(&x, &weight),
                forward(&x, &weight, Some(&bias), Some(&residual)),
            ),
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(&x, &weight, Some(&bias), Some(&residual)))
            }
        },
        (None, Some(residual)) => {
            // Not reached through the public API (the residual op always has a bias).
            let y = autodiff_conv2d::<C>(x, weight, None, None, options);
            <Autodiff<Flex, C> as FloatTensorOps<Autodiff<Flex, C>>>::float_add(y, residual)
        }
        (Some(bias), None) => match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(state(&x, &weight), forward(&x, &weight, Some(&bias), None))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &weight, Some(&bias), None)),
        },
        (None, None) => match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(state(&x, &weight), forward(&x, &weight, None, None))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &weight, None, None)),
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
        autodiff_conv2d::<C>(x, weight, None, None, options)
    }

    fn difflab_conv2d_bias(
        x: AdTensor<C>,
        weight: AdTensor<C>,
        bias: AdTensor<C>,
        options: ConvOptions<2>,
    ) -> AdTensor<C> {
        autodiff_conv2d::<C>(x, weight, Some(bias), None, options)
    }

    fn difflab_conv2d_bias_residual(
        x: AdTensor<C>,
        weight: AdTensor<C>,
        bias: AdTensor<C>,
        residual: AdTensor<C>,
        options: ConvOptions<2>,
    ) -> AdTensor<C> {
        autodiff_conv2d::<C>(x, weight, Some(bias), Some(residual), options)
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
