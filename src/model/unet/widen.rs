//! Growing a trained U-Net to twice its width without changing what it computes: Net2Net's
//! "wider" operation (Chen, Goodfellow & Shlens 2016), so that a small model's training is not
//! thrown away when it runs out of capacity.
//!
//! Every hidden channel c becomes two channels 2c and 2c + 1 that carry the same values:
//! - a layer that *produces* channels copies channel c's weights and bias to both;
//! - a layer that *consumes* them splits each weight w on c into α·w on 2c and (1 − α)·w on
//!   2c + 1, α drawn per weight from U(0.25, 0.75): the sum is w, so the output is unchanged,
//!   while the two copies get different gradients and grow apart as training goes on (an even
//!   split would keep them identical forever);
//! - GroupNorm keeps its number of groups: group g of the wide net holds both copies of exactly
//!   the channels of group g of the narrow one, so its mean and variance are the same (the
//!   up path's concatenated skips interleave the same way);
//! - the time embedding's sinusoids of width 2d contain those of width d (frequency k of d is
//!   frequency 2k of 2d), so the first linear layer takes the old rows there and zeros elsewhere;
//! - self-attention's scores Q·Kᵀ/√C double in the dot product and grow √2 in the scale, so the
//!   query weights are divided by √2.
//!
//! The image channels (the first conv's input, the last conv's output) and the class rows of
//! the class embedding stay as they are.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Embedding, GroupNorm, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Attention, ResBlock, UNet, UNetConfig};
use crate::error::{DiffError, Result};
use crate::tensor_util::to_vec;

/// What one axis of a weight tensor is to the widening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    /// Image channels, classes, kernel taps: unchanged.
    Keep,
    /// Channels the layer produces: new j is a copy of old j / 2.
    Copy,
    /// Channels the layer consumes: new 2i and 2i + 1 share old i's weight, α and 1 − α.
    Split,
    /// The sinusoidal time embedding's columns (sines, then cosines): new 2k of each half is
    /// old k, the new frequencies in between start at zero.
    Sinusoid,
}

/// Widens tensors, drawing the split fractions from one seeded generator.
struct Widener {
    rng: ChaCha8Rng,
    device: Device,
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

impl Widener {
    /// The widened values and shape of a tensor `old` of `shape` whose axes play `axes`.
    fn values(&mut self, old: &[f32], shape: &[usize], axes: &[Axis]) -> (Vec<f32>, Vec<usize>) {
        let wide: Vec<usize> = shape
            .iter()
            .zip(axes)
            .map(|(&n, a)| if *a == Axis::Keep { n } else { 2 * n })
            .collect();
        let (old_strides, new_strides) = (strides(shape), strides(&wide));
        let len: usize = wide.iter().product();
        let split = axes.iter().position(|a| *a == Axis::Split);
        let mut out = vec![0.0f32; len];
        // α of each even-indexed entry along the split axis, for its odd partner.
        let mut alpha = vec![0.0f32; if split.is_some() { len } else { 0 }];
        let mut idx = vec![0usize; wide.len()];
        for (n, slot) in out.iter_mut().enumerate() {
            let mut rest = n;
            for (i, s) in idx.iter_mut().zip(&new_strides) {
                *i = rest / s;
                rest %= s;
            }
            let mut o = 0;
            let mut fresh = false;
            for (d, &j) in idx.iter().enumerate() {
                let i = match axes[d] {
                    Axis::Keep => j,
                    Axis::Copy | Axis::Split => j / 2,
                    Axis::Sinusoid => {
                        // Old width 2h (h sines, h cosines), new 4h (2h and 2h).
                        let (half_old, half_new) = (shape[d] / 2, shape[d]);
                        let (k, start) = if j < half_new {
                            (j, 0)
                        } else {
                            (j - half_new, half_old)
                        };
                        fresh |= k % 2 == 1;
                        start + k / 2
                    }
                };
                o += i * old_strides[d];
            }
            if fresh {
                continue;
            }
            let v = old[o];
            *slot = match split {
                Some(d) if idx[d].is_multiple_of(2) => {
                    let a = self.rng.random_range(0.25f32..0.75);
                    alpha[n] = a;
                    a * v
                }
                Some(d) => (1.0 - alpha[n - new_strides[d]]) * v,
                None => v,
            };
        }
        (out, wide)
    }

    fn param<const D: usize>(
        &mut self,
        old: &Param<Tensor<D>>,
        axes: [Axis; D],
    ) -> Result<Param<Tensor<D>>> {
        self.param_scaled(old, axes, |_, v| v)
    }

    /// As [`Widener::param`], then `scale(new flat index, value)` applied to each value.
    fn param_scaled<const D: usize>(
        &mut self,
        old: &Param<Tensor<D>>,
        axes: [Axis; D],
        scale: impl Fn(usize, f32) -> f32,
    ) -> Result<Param<Tensor<D>>> {
        let t = old.val();
        let shape = t.dims();
        let (mut v, wide) = self.values(&to_vec(t)?, &shape, &axes);
        for (n, x) in v.iter_mut().enumerate() {
            *x = scale(n, *x);
        }
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(v, wide),
            &self.device,
        )))
    }

    fn conv(&mut self, old: &Conv2d, new: &mut Conv2d, out: Axis, inp: Axis) -> Result<()> {
        new.weight = self.param(&old.weight, [out, inp, Axis::Keep, Axis::Keep])?;
        new.bias = match &old.bias {
            Some(b) => Some(self.param(b, [out])?),
            None => None,
        };
        Ok(())
    }

    fn linear(&mut self, old: &Linear, new: &mut Linear, inp: Axis, out: Axis) -> Result<()> {
        new.weight = self.param(&old.weight, [inp, out])?;
        new.bias = match &old.bias {
            Some(b) => Some(self.param(b, [out])?),
            None => None,
        };
        Ok(())
    }

    fn norm(&mut self, old: &GroupNorm, new: &mut GroupNorm) -> Result<()> {
        new.gamma = match &old.gamma {
            Some(g) => Some(self.param(g, [Axis::Copy])?),
            None => None,
        };
        new.beta = match &old.beta {
            Some(b) => Some(self.param(b, [Axis::Copy])?),
            None => None,
        };
        Ok(())
    }

    fn embedding(&mut self, old: &Embedding, new: &mut Embedding) -> Result<()> {
        new.weight = self.param(&old.weight, [Axis::Keep, Axis::Copy])?;
        Ok(())
    }

    fn res(&mut self, old: &ResBlock, new: &mut ResBlock) -> Result<()> {
        self.norm(&old.norm1, &mut new.norm1)?;
        self.conv(&old.conv1, &mut new.conv1, Axis::Copy, Axis::Split)?;
        self.linear(&old.time, &mut new.time, Axis::Split, Axis::Copy)?;
        self.norm(&old.norm2, &mut new.norm2)?;
        self.conv(&old.conv2, &mut new.conv2, Axis::Copy, Axis::Split)?;
        both(old.skip.as_ref(), new.skip.as_mut(), |o, n| {
            self.conv(o, n, Axis::Copy, Axis::Split)
        })
    }

    /// A level of either path: its blocks, then its resampling conv if it has one.
    fn level(
        &mut self,
        old: &[ResBlock],
        new: &mut [ResBlock],
        old_conv: Option<&Conv2d>,
        new_conv: Option<&mut Conv2d>,
    ) -> Result<()> {
        if old.len() != new.len() {
            return Err(mismatch());
        }
        for (o, n) in old.iter().zip(new) {
            self.res(o, n)?;
        }
        both(old_conv, new_conv, |o, n| {
            self.conv(o, n, Axis::Copy, Axis::Split)
        })
    }

    fn attention(&mut self, old: &Attention, new: &mut Attention) -> Result<()> {
        self.norm(&old.norm, &mut new.norm)?;
        // qkv's outputs are [Q | K | V], each C wide (2C once widened): Q's columns come first.
        let q = old.proj.weight.dims()[0] * 2;
        let root_half = std::f32::consts::FRAC_1_SQRT_2;
        let wide_out = 6 * old.proj.weight.dims()[0];
        new.qkv.weight =
            self.param_scaled(&old.qkv.weight, [Axis::Split, Axis::Copy], |n, v| {
                if n % wide_out < q { v * root_half } else { v }
            })?;
        new.qkv.bias =
            match &old.qkv.bias {
                Some(b) => Some(self.param_scaled(b, [Axis::Copy], |n, v| {
                    if n < q { v * root_half } else { v }
                })?),
                None => None,
            };
        self.linear(&old.proj, &mut new.proj, Axis::Split, Axis::Copy)
    }
}

/// Widens an optional layer with `f` when both nets have it; one without the other is a mismatch.
fn both<O, N>(
    old: Option<&O>,
    new: Option<&mut N>,
    mut f: impl FnMut(&O, &mut N) -> Result<()>,
) -> Result<()> {
    match (old, new) {
        (Some(o), Some(n)) => f(o, n),
        (None, None) => Ok(()),
        _ => Err(mismatch()),
    }
}

fn mismatch() -> DiffError {
    DiffError::Backend("widening: the wide net's layers do not match the narrow net's".into())
}

impl UNet {
    /// This net at twice the width (`base_channels` doubled, the rest of `config` kept), computing
    /// the same outputs to rounding; `seed` draws how the doubled channels split their weights.
    /// An odd `base_channels` cannot be widened (its sinusoids do not nest).
    pub fn widened(
        &self,
        config: &UNetConfig,
        seed: u64,
        device: &Device,
    ) -> Result<(UNet, UNetConfig)> {
        if config.base_channels % 2 == 1 {
            return Err(DiffError::invalid(format!(
                "a U-Net with an odd number of base channels ({}) cannot be widened",
                config.base_channels
            )));
        }
        let wide = UNetConfig {
            base_channels: 2 * config.base_channels,
            ..config.clone()
        };
        // Its layers are all replaced below; the seed only makes the build deterministic.
        let mut new = wide.init_seeded(device, seed)?;
        let mut w = Widener {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        };
        w.linear(&self.time1, &mut new.time1, Axis::Sinusoid, Axis::Copy)?;
        w.linear(&self.time2, &mut new.time2, Axis::Split, Axis::Copy)?;
        both(self.class_emb.as_ref(), new.class_emb.as_mut(), |o, n| {
            w.embedding(o, n)
        })?;
        w.conv(&self.conv_in, &mut new.conv_in, Axis::Copy, Axis::Keep)?;
        if self.down.len() != new.down.len() || self.up.len() != new.up.len() {
            return Err(mismatch());
        }
        for (o, n) in self.down.iter().zip(&mut new.down) {
            w.level(&o.blocks, &mut n.blocks, o.down.as_ref(), n.down.as_mut())?;
        }
        w.res(&self.mid1, &mut new.mid1)?;
        both(self.mid_attn.as_ref(), new.mid_attn.as_mut(), |o, n| {
            w.attention(o, n)
        })?;
        w.res(&self.mid2, &mut new.mid2)?;
        for (o, n) in self.up.iter().zip(&mut new.up) {
            w.level(&o.blocks, &mut n.blocks, o.up.as_ref(), n.up.as_mut())?;
        }
        w.norm(&self.norm_out, &mut new.norm_out)?;
        w.conv(&self.conv_out, &mut new.conv_out, Axis::Keep, Axis::Split)?;
        Ok((new, wide))
    }
}

/// A SafeTensors U-Net file widened to twice its base channels (see [`UNet::widened`]), as the
/// bytes of a new file (config in the metadata; no training record: the wide net is untrained
/// as such).
pub fn widen_safetensors(bytes: &[u8], what: &str, seed: u64) -> Result<Vec<u8>> {
    let device = Device::flex();
    let (narrow, config) = super::load_safetensors(bytes, what, &device)?;
    let (wide, wide_config) = narrow.widened(&config, seed, &device)?;
    wide.safetensors_bytes(&wide_config, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumed_axis_splits_each_weight_into_two_that_sum_to_it() {
        let mut w = Widener {
            rng: ChaCha8Rng::seed_from_u64(1),
            device: Device::flex(),
        };
        // [in 2, out 3] → [in 4, out 6]
        let old = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let (v, shape) = w.values(&old, &[2, 3], &[Axis::Split, Axis::Copy]);
        assert_eq!(shape, vec![4, 6]);
        for i in 0..2 {
            for j in 0..6 {
                let (a, b) = (v[(2 * i) * 6 + j], v[(2 * i + 1) * 6 + j]);
                assert!((a + b - old[i * 3 + j / 2]).abs() < 1e-6);
                let frac = a / old[i * 3 + j / 2];
                assert!((0.25..0.75).contains(&frac), "α = {frac}");
            }
        }
        // The two copies of an output column are split differently.
        assert_ne!(v[0], v[1]);
    }

    #[test]
    fn sinusoid_columns_land_on_the_even_frequencies() {
        let mut w = Widener {
            rng: ChaCha8Rng::seed_from_u64(1),
            device: Device::flex(),
        };
        // 4 sinusoid rows (2 sines, 2 cosines) → 8, one Keep column.
        let (v, shape) = w.values(
            &[1.0, 2.0, 3.0, 4.0],
            &[4, 1],
            &[Axis::Sinusoid, Axis::Keep],
        );
        assert_eq!(shape, vec![8, 1]);
        assert_eq!(v, vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0]);
    }
}
