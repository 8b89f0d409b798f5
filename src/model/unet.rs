//! The DDPM U-Net (Ho et al. 2020, appendix B), small enough to train on a laptop: a sinusoidal
//! timestep embedding and an MLP; residual blocks (GroupNorm, SiLU, 3×3 conv) with the time
//! embedding added; a downsampling path and an upsampling path joined by skip connections; and
//! optional single-head self-attention at the lowest resolution. It predicts ε or v.
//!
//! Weights are saved as SafeTensors (burn-store), with the config as JSON in the file's
//! metadata, so one file is a whole model and PyTorch can read it too.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use difflab_kernels::{
    attention, cat_channels, conv2d_module as conv, conv2d_module_residual as conv_plus,
    conv2d_module_shift as conv_shift, group_norm_silu, upsample2,
};

use super::Denoiser;
use super::sinusoidal_embedding;
use crate::diffusion::scheduler::PredictionType;
use crate::error::{DiffError, Result};

mod average;
mod widen;
pub use average::average_safetensors;
pub use widen::widen_safetensors;

/// The U-Net's shape.
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Image channels (1 for MNIST).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Image height and width (the sampler's shape; any size divisible by 2^(levels−1) works).
    #[config(default = 28)]
    pub image_size: usize,
    /// Channels at the first level.
    #[config(default = 32)]
    pub base_channels: usize,
    /// Channels per level as multiples of `base_channels`; each level after the first halves
    /// the resolution.
    #[config(default = "vec![1, 2, 2]")]
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level.
    #[config(default = 1)]
    pub blocks_per_level: usize,
    /// Self-attention at the lowest resolution.
    #[config(default = true)]
    pub attention: bool,
    /// A 3×3 conv after each ×2 upsampling (DDPM has one; without it the next block's convs
    /// do the mixing, and training is about a quarter cheaper at 28×28).
    #[config(default = false)]
    pub up_conv: bool,
    /// GroupNorm groups (must divide every level's channels).
    #[config(default = 8)]
    pub groups: usize,
    /// What the network predicts: epsilon or v-prediction.
    #[config(default = "PredictionType::Epsilon")]
    pub prediction: PredictionType,
    /// Class-conditional: the number of classes (labels 0..n, plus the "no label" token ∅ = n,
    /// for classifier-free guidance). `None` (absent in files written before it existed) is the
    /// unconditional net.
    pub num_classes: Option<usize>,
}

/// A residual block: GroupNorm, SiLU, conv; add the projected time embedding; GroupNorm, SiLU,
/// conv; plus the (1×1-projected) input.
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

/// Single-head self-attention over the pixels, with a residual connection.
#[derive(Module, Debug)]
pub struct Attention {
    norm: GroupNorm,
    qkv: Linear,
    proj: Linear,
}

/// One level of the down path: blocks, then (except at the lowest level) a stride-2 conv.
#[derive(Module, Debug)]
pub struct DownLevel {
    blocks: Vec<ResBlock>,
    down: Option<Conv2d>,
}

/// One level of the up path: blocks that each take a skip connection, then (except at the top)
/// a nearest-neighbour ×2 upsampling, optionally followed by a conv.
#[derive(Module, Debug)]
pub struct UpLevel {
    blocks: Vec<ResBlock>,
    upsample: bool,
    up: Option<Conv2d>,
}

/// The U-Net: ε̂(x_t, t) or v̂(x_t, t).
#[derive(Module, Debug)]
pub struct UNet {
    time1: Linear,
    time2: Linear,
    /// The class embedding (class-conditional nets only): row k is added to the time embedding
    /// for label k; row `num_classes` is ∅.
    class_emb: Option<Embedding>,
    conv_in: Conv2d,
    down: Vec<DownLevel>,
    mid1: ResBlock,
    mid_attn: Option<Attention>,
    mid2: ResBlock,
    up: Vec<UpLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// A 3×3 conv with padding 1 (the U-Net's and the digit classifier's).
pub(crate) fn conv3(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

fn norm(groups: usize, channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, channels).init(device)
}

impl ResBlock {
    fn new(c_in: usize, c_out: usize, t_dim: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm1: norm(groups, c_in, device),
            conv1: conv3(c_in, c_out, 1, device),
            time: LinearConfig::new(t_dim, c_out).init(device),
            norm2: norm(groups, c_out, device),
            conv2: conv3(c_out, c_out, 1, device),
            skip: (c_in != c_out).then(|| Conv2dConfig::new([c_in, c_out], [1, 1]).init(device)),
        }
    }

    fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        // GroupNorm + SiLU fused, and the conv, on difflab's kernels where the tensors are on
        // flex; there the time embedding [B, C] and the skip connection are added inside the
        // convs' output pass (elsewhere, by burn's broadcast adds: the same sums).
        let h = group_norm_silu(&self.norm1, x.clone(), true);
        let h = conv_shift(&self.conv1, h, self.time.forward(silu(emb)));
        let h = group_norm_silu(&self.norm2, h, true);
        match &self.skip {
            Some(s) => conv_plus(s, x, conv(&self.conv2, h)),
            None => conv_plus(&self.conv2, h, x),
        }
    }
}

impl Attention {
    fn new(c: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm: norm(groups, c, device),
            qkv: LinearConfig::new(c, 3 * c).init(device),
            proj: LinearConfig::new(c, c).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        // [B, C, H, W] → [B, HW, C]
        let tokens = group_norm_silu(&self.norm, x.clone(), false)
            .reshape([b, c, h * w])
            .swap_dims(1, 2);
        let qkv = self.qkv.forward(tokens);
        // softmax(QKᵀ/√C)·V (Vaswani et al. 2017), on difflab's kernel where the tensors are on
        // flex.
        let out = self.proj.forward(attention(qkv, c));
        x + out.swap_dims(1, 2).reshape([b, c, h, w])
    }
}

impl UNetConfig {
    /// Checks that the shape is buildable.
    pub fn validate(&self) -> Result<()> {
        let levels = self.channel_mult.len();
        let bad = |m: String| Err(DiffError::invalid(format!("U-Net config: {m}")));
        if levels == 0 || levels > 5 {
            return bad(format!("1 to 5 levels, not {levels}"));
        }
        if self.in_channels == 0 || self.base_channels == 0 || self.groups == 0 {
            return bad("channels and groups must be ≥ 1".into());
        }
        if self.blocks_per_level == 0 || self.blocks_per_level > 4 {
            return bad("1 to 4 blocks per level".into());
        }
        for m in &self.channel_mult {
            if *m == 0 || !(m * self.base_channels).is_multiple_of(self.groups) {
                return bad(format!(
                    "{} channels are not divisible into {} groups (GroupNorm's groups must divide \
                     every level's channels)",
                    m * self.base_channels,
                    self.groups
                ));
            }
        }
        let div = 1 << (levels - 1);
        if self.image_size > 512 {
            return bad(format!(
                "image size {} is larger than the 512 pixels a U-Net here may take",
                self.image_size
            ));
        }
        if self.base_channels > 1024 {
            return bad(format!(
                "{} base channels is more than 1024",
                self.base_channels
            ));
        }
        if self.image_size == 0 || !self.image_size.is_multiple_of(div) {
            return bad(format!(
                "image size {} must be divisible by {div} (one halving per level)",
                self.image_size
            ));
        }
        if let Some(n) = self.num_classes
            && !(1..=1000).contains(&n)
        {
            return bad(format!("1 to 1000 classes, not {n}"));
        }
        if !matches!(
            self.prediction,
            PredictionType::Epsilon | PredictionType::VPrediction | PredictionType::Flow
        ) {
            return bad("the U-Net predicts epsilon, v or a flow's velocity".into());
        }
        Ok(())
    }

    /// Floating-point operations of one forward pass for one image (2 per multiply-add; convs,
    /// linears and attention's matmuls; norms and activations left out).
    pub fn forward_flops(&self) -> f64 {
        let conv = |ci: usize, co: usize, k: usize, px: usize| 2.0 * (ci * co * k * k * px) as f64;
        let t_dim = self.time_dim();
        let chans = self.channels();
        let levels = chans.len();
        let res = |c_in: usize, c_out: usize, px: usize| {
            conv(c_in, c_out, 3, px)
                + conv(c_out, c_out, 3, px)
                + if c_in == c_out {
                    0.0
                } else {
                    conv(c_in, c_out, 1, px)
                }
                + 2.0 * (t_dim * c_out) as f64
        };
        let s = self.image_size;
        let px = |level: usize| (s >> level) * (s >> level);
        let mut f = 2.0 * (self.base_channels * t_dim + t_dim * t_dim) as f64;
        f += conv(self.in_channels, self.base_channels, 3, px(0));
        let mut c = self.base_channels;
        let mut skips = Vec::new();
        for (i, &co) in chans.iter().enumerate() {
            for _ in 0..self.blocks_per_level {
                f += res(c, co, px(i));
                c = co;
                skips.push(c);
            }
            if i + 1 < levels {
                f += conv(c, c, 3, px(i + 1));
            }
        }
        let low = px(levels - 1);
        f += 2.0 * res(c, c, low);
        if self.attention {
            f += 2.0 * (low * c * 4 * c) as f64 + 4.0 * (low * low * c) as f64;
        }
        for (i, &co) in chans.iter().enumerate().rev() {
            for _ in 0..self.blocks_per_level {
                let skip = skips.pop().unwrap_or(0);
                f += res(c + skip, co, px(i));
                c = co;
            }
            if i > 0 && self.up_conv {
                f += conv(c, c, 3, px(i - 1));
            }
        }
        f + conv(c, self.in_channels, 3, px(0))
    }

    /// Channels per level.
    pub fn channels(&self) -> Vec<usize> {
        self.channel_mult
            .iter()
            .map(|m| m * self.base_channels)
            .collect()
    }

    /// The width of the time embedding's MLP.
    pub fn time_dim(&self) -> usize {
        4 * self.base_channels
    }

    /// A freshly initialised model on `device` (burn's random generator, unseeded).
    pub fn init(&self, device: &Device) -> Result<UNet> {
        super::init_with_rng(device, None, || self.init_drawing(device))
    }

    /// A freshly initialised model on `device`, its weights drawn from `seed`: the same seed
    /// gives the same weights.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> Result<UNet> {
        super::init_with_rng(device, Some(seed), || self.init_drawing(device))
    }

    /// Builds the model, drawing its weights from burn's generator (the caller holds it).
    fn init_drawing(&self, device: &Device) -> Result<UNet> {
        self.validate()?;
        let t_dim = self.time_dim();
        let g = self.groups;
        let chans = self.channels();
        let levels = chans.len();
        let mut down = Vec::new();
        let mut c = self.base_channels;
        // The skip connections: one after each block of each level.
        let mut skips = Vec::new();
        for (i, &co) in chans.iter().enumerate() {
            let mut blocks = Vec::new();
            for _ in 0..self.blocks_per_level {
                blocks.push(ResBlock::new(c, co, t_dim, g, device));
                c = co;
                skips.push(c);
            }
            let last = i + 1 == levels;
            down.push(DownLevel {
                blocks,
                down: (!last).then(|| conv3(c, c, 2, device)),
            });
        }
        let mid1 = ResBlock::new(c, c, t_dim, g, device);
        let mid_attn = self.attention.then(|| Attention::new(c, g, device));
        let mid2 = ResBlock::new(c, c, t_dim, g, device);
        let mut up = Vec::new();
        for (i, &co) in chans.iter().enumerate().rev() {
            let mut blocks = Vec::new();
            for _ in 0..self.blocks_per_level {
                let skip = skips.pop().unwrap_or(0);
                blocks.push(ResBlock::new(c + skip, co, t_dim, g, device));
                c = co;
            }
            up.push(UpLevel {
                blocks,
                upsample: i > 0,
                up: (i > 0 && self.up_conv).then(|| conv3(c, c, 1, device)),
            });
        }
        Ok(UNet {
            time1: LinearConfig::new(self.base_channels, t_dim).init(device),
            time2: LinearConfig::new(t_dim, t_dim).init(device),
            class_emb: self
                .num_classes
                .map(|n| EmbeddingConfig::new(n + 1, t_dim).init(device)),
            conv_in: conv3(self.in_channels, self.base_channels, 1, device),
            down,
            mid1,
            mid_attn,
            mid2,
            up,
            norm_out: norm(g, c, device),
            conv_out: conv3(c, self.in_channels, 1, device),
        })
    }
}

impl UNet {
    /// The model output for x [B, C, H, W] at timesteps t (0-based), same shape as x; a
    /// class-conditional net is given ∅ (no label).
    pub fn forward(&self, x: Tensor<4>, timesteps: &[usize]) -> Tensor<4> {
        self.forward_labels(x, timesteps, None)
    }

    /// The number of classes of a class-conditional net (∅ is label `num_classes`).
    pub fn num_classes(&self) -> Option<usize> {
        self.class_emb
            .as_ref()
            .map(|e| e.weight.dims()[0].saturating_sub(1))
    }

    /// The class embedding's rows (`num_classes + 1` of them, ∅ last), for inspection.
    pub fn class_embedding(&self) -> Option<Tensor<2>> {
        self.class_emb.as_ref().map(|e| e.weight.val())
    }

    /// As [`UNet::forward`], with one class label per image (`num_classes` = ∅; labels past it
    /// are read as ∅). An unconditional net ignores the labels.
    pub fn forward_labels(
        &self,
        x: Tensor<4>,
        timesteps: &[usize],
        labels: Option<&[usize]>,
    ) -> Tensor<4> {
        let device = x.device();
        // Time embedding: sinusoids → Linear → SiLU → Linear (DDPM's "temb").
        let base = self.time1.weight.dims()[0];
        let emb = sinusoidal_embedding(timesteps, base, &device);
        let mut emb = self.time2.forward(silu(self.time1.forward(emb)));
        // Class conditioning: the label's embedding added to the time embedding.
        if let (Some(ce), Some(null)) = (&self.class_emb, self.num_classes()) {
            let ids: Vec<i32> = (0..timesteps.len())
                .map(|i| {
                    let l = labels.and_then(|l| l.get(i)).copied().unwrap_or(null);
                    i32::try_from(l.min(null)).unwrap_or(0)
                })
                .collect();
            let n = ids.len();
            let ids = Tensor::<1, Int>::from_ints(TensorData::new(ids, [n]), &device);
            emb = emb + ce.weight.val().select(0, ids);
        }
        let mut h = conv(&self.conv_in, x);
        let mut skips = Vec::new();
        for level in &self.down {
            for block in &level.blocks {
                h = block.forward(h, emb.clone());
                skips.push(h.clone());
            }
            if let Some(d) = &level.down {
                h = conv(d, h);
            }
        }
        h = self.mid1.forward(h, emb.clone());
        if let Some(a) = &self.mid_attn {
            h = a.forward(h);
        }
        h = self.mid2.forward(h, emb.clone());
        for level in &self.up {
            for block in &level.blocks {
                let Some(skip) = skips.pop() else { break };
                h = block.forward(cat_channels(h, skip), emb.clone());
            }
            if level.upsample {
                h = upsample2(h);
                if let Some(u) = &level.up {
                    h = conv(u, h);
                }
            }
        }
        conv(&self.conv_out, group_norm_silu(&self.norm_out, h, true))
    }

    /// Saves the weights as SafeTensors with `config` in the metadata, atomically.
    pub fn save_safetensors(&self, config: &UNetConfig, path: &Path) -> Result<()> {
        let bytes = self.safetensors_bytes(config, None)?;
        crate::data::image_io::write_atomic(path, &bytes)
    }

    /// As [`UNet::save_safetensors`], with how the model was trained in the metadata too.
    pub fn save_trained(
        &self,
        config: &UNetConfig,
        record: &TrainingRecord,
        path: &Path,
    ) -> Result<()> {
        let bytes = self.safetensors_bytes(config, Some(record))?;
        crate::data::image_io::write_atomic(path, &bytes)
    }

    /// The weights as SafeTensors bytes, with `config` (and `record`, when given) in the
    /// metadata.
    pub fn safetensors_bytes(
        &self,
        config: &UNetConfig,
        record: Option<&TrainingRecord>,
    ) -> Result<Vec<u8>> {
        let json = serde_json::to_string(config)
            .map_err(|e| DiffError::Backend(format!("cannot write the U-Net config: {e}")))?;
        let mut store = SafetensorsStore::from_bytes(None).metadata(CONFIG_KEY, json);
        if let Some(r) = record {
            let json = serde_json::to_string(r).map_err(|e| {
                DiffError::Backend(format!("cannot write the training record: {e}"))
            })?;
            store = store.metadata(TRAINING_KEY, json);
        }
        self.save_into(&mut store)
            .map_err(|e| DiffError::Backend(format!("cannot save the U-Net: {e}")))?;
        store
            .get_bytes()
            .map_err(|e| DiffError::Backend(format!("cannot save the U-Net: {e}")))
    }
}

/// The SafeTensors metadata key holding the config JSON.
pub const CONFIG_KEY: &str = "difflab.unet_config";

/// The SafeTensors metadata key holding the [`TrainingRecord`] JSON.
pub const TRAINING_KEY: &str = "difflab.training";

/// How a weights file was trained, kept in its metadata so that sampling can tell when it is
/// asked to use another schedule than the one the model learned.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainingRecord {
    /// The noise schedule (kind, T, β range) it was trained on.
    pub schedule: crate::diffusion::ScheduleConfig,
    /// What it predicts.
    pub prediction: PredictionType,
    /// Classes of a class-conditional net.
    pub num_classes: Option<usize>,
    /// The probability of training with ∅ instead of the label.
    pub label_dropout: f64,
    /// The EMA decay of the weights in the file.
    pub ema_decay: f64,
    /// Steps trained, in all: a run started from another file's weights (`--init-from`) adds
    /// its steps to that file's.
    pub steps_trained: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// The mean loss over the last steps.
    pub final_loss: Option<f32>,
    /// Min-SNR-γ loss weighting, when the run used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_snr_gamma: Option<f64>,
    /// Whether every class was drawn equally often (`--balance-classes`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub balance_classes: bool,
    /// The files whose weights were averaged into this one (`difflab average`), empty for a
    /// trained file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub averaged_from: Vec<String>,
}

impl TrainingRecord {
    /// One line on how `schedule` differs from the training schedule, or `None` when they agree.
    pub fn schedule_mismatch(&self, schedule: &crate::diffusion::ScheduleConfig) -> Option<String> {
        (self.schedule != *schedule).then(|| {
            format!(
                "this model was trained on the schedule {} but is sampled with {}: its predictions \
                 will not match the noise levels",
                self.schedule.describe(),
                schedule.describe()
            )
        })
    }
}

/// The JSON string under `key` in a SafeTensors file's metadata (the framing is checked by
/// [`read_config`] first).
fn metadata_string(bytes: &[u8], key: &str) -> Option<String> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8 + n)?).ok()?;
    Some(header.get("__metadata__")?.get(key)?.as_str()?.to_string())
}

/// The training record in a SafeTensors file's metadata, if it has one (files written before
/// records existed, and the first shipped model, have none).
pub fn read_training_record(bytes: &[u8], what: &str) -> Result<Option<TrainingRecord>> {
    read_config(bytes, what)?;
    match metadata_string(bytes, TRAINING_KEY) {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| {
            DiffError::invalid(format!(
                "{what}: the training record in its metadata is invalid ({e})"
            ))
        }),
    }
}

/// Reads the config out of a SafeTensors file's header (8-byte little-endian length, then JSON
/// with `__metadata__`), checking the framing so a truncated file is named as such.
pub fn read_config(bytes: &[u8], what: &str) -> Result<UNetConfig> {
    let bad = |m: String| DiffError::invalid(format!("{what}: {m}"));
    if bytes.len() < 8 {
        return Err(bad(format!(
            "not a SafeTensors file ({} bytes; truncated?)",
            bytes.len()
        )));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(len8);
    if n > (bytes.len() - 8) as u64 || n > 100_000_000 {
        return Err(bad(format!(
            "the SafeTensors header says {n} bytes but the file has {} (truncated or not SafeTensors)",
            bytes.len()
        )));
    }
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n as usize])
        .map_err(|e| bad(format!("the SafeTensors header is not valid JSON ({e})")))?;
    // The data must cover every tensor's offsets, or the file was cut short.
    let data_len = (bytes.len() - 8 - n as usize) as u64;
    if let Some(obj) = header.as_object() {
        for (name, t) in obj {
            if let Some(end) = t
                .get("data_offsets")
                .and_then(|o| o.get(1))
                .and_then(serde_json::Value::as_u64)
                && end > data_len
            {
                return Err(bad(format!(
                    "tensor {name} ends at byte {end} of the data, but there are only {data_len} (truncated)"
                )));
            }
        }
    }
    let json = header
        .get("__metadata__")
        .and_then(|m| m.get(CONFIG_KEY))
        .and_then(|c| c.as_str())
        .ok_or_else(|| {
            bad(format!(
                "no U-Net config in its metadata (key {CONFIG_KEY}); is it a difflab U-Net?"
            ))
        })?;
    let config: UNetConfig = serde_json::from_str(json)
        .map_err(|e| bad(format!("the U-Net config in its metadata is invalid ({e})")))?;
    config.validate().map_err(|e| bad(e.to_string()))?;
    Ok(config)
}

/// Checks every F32 tensor of a SafeTensors file for NaN and ±Inf; the error names the first bad
/// tensor (in name order) and what was found. The framing must have been checked by
/// [`read_config`].
pub fn check_finite(bytes: &[u8], what: &str) -> Result<()> {
    let Some(n) = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
    else {
        return Err(DiffError::invalid(format!(
            "{what}: not a SafeTensors file"
        )));
    };
    let header: serde_json::Map<String, serde_json::Value> = bytes
        .get(8..8 + n)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or_else(|| DiffError::invalid(format!("{what}: the SafeTensors header is damaged")))?;
    let data = &bytes[8 + n..];
    let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
    names.sort();
    for name in names {
        let t = &header[name];
        if t.get("dtype").and_then(|d| d.as_str()) != Some("F32") {
            continue;
        }
        let offsets = t.get("data_offsets").and_then(|o| o.as_array());
        let range = offsets.and_then(|o| {
            let a = usize::try_from(o.first()?.as_u64()?).ok()?;
            let b = usize::try_from(o.get(1)?.as_u64()?).ok()?;
            (a <= b && b <= data.len()).then_some(a..b)
        });
        let Some(range) = range else {
            return Err(DiffError::invalid(format!(
                "{what}: tensor {name} has damaged offsets"
            )));
        };
        let bad = data[range].chunks_exact(4).enumerate().find_map(|(i, c)| {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            (!v.is_finite()).then_some((i, v))
        });
        if let Some((i, v)) = bad {
            return Err(DiffError::NonFinite(format!(
                "{what}: tensor {name} holds {v} at index {i}; the weights are damaged (or the \
                 training diverged), so they cannot sample"
            )));
        }
    }
    Ok(())
}

/// One of burn's load errors as one line: `tensor down.0.conv.weight has shape [32, 1, 3, 3]
/// where the model needs [16, 1, 3, 3] (and 3 more)`.
fn apply_error_line(e: &burn::store::ApplyError, count: usize) -> String {
    let more = if count > 1 {
        format!(" (and {} more)", count - 1)
    } else {
        String::new()
    };
    match e {
        burn::store::ApplyError::ShapeMismatch {
            path,
            expected,
            found,
        } => format!(
            "tensor {path} has shape {:?} where the model needs {:?}{more} (does its config \
             match its tensors?)",
            found.as_slice(),
            expected.as_slice()
        ),
        other => format!("{}{more}", first_line(&other.to_string())),
    }
}

/// The first non-empty line of a message, at most 200 characters.
fn first_line(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    crate::error::ellipsized(line, 200)
}

/// Builds the model a SafeTensors file describes and loads its weights; every tensor must be
/// present with the right shape, finite, and nothing extra may be there.
pub fn load_safetensors(bytes: &[u8], what: &str, device: &Device) -> Result<(UNet, UNetConfig)> {
    let config = read_config(bytes, what)?;
    check_finite(bytes, what)?;
    let mut model = config.init(device)?;
    // burn's own refusals list every tensor over many lines: it returns what it found, and
    // the first problem becomes one line here.
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| DiffError::invalid(format!("{what}: {}", first_line(&e.to_string()))))?;
    let bad = |m: String| Err(DiffError::invalid(format!("{what}: {m}")));
    if let Some(e) = result.errors.first() {
        return bad(apply_error_line(e, result.errors.len()));
    }
    if let Some((name, _)) = result.missing.first() {
        return bad(format!(
            "missing tensor {name} ({} missing in all)",
            result.missing.len()
        ));
    }
    if let Some(name) = result.unused.first() {
        return bad(format!("unexpected tensor {name} (does the config match?)"));
    }
    Ok((model, config))
}

/// Builds a `config` model and loads what a SafeTensors file of the same shape has into it: a
/// class-conditional config takes an unconditional file, and its class embedding starts at zero
/// (the loaded model's outputs are then exactly the file's). Every tensor of the file must fit.
pub fn load_safetensors_partial(
    bytes: &[u8],
    what: &str,
    config: &UNetConfig,
    device: &Device,
) -> Result<(UNet, UNetConfig)> {
    read_config(bytes, what)?;
    check_finite(bytes, what)?;
    let mut model = config.init(device)?;
    // A fresh zero-initialised parameter (not a zeroed copy, which would not be tracked for
    // gradients on an autodiff device).
    model.class_emb = config.num_classes.map(|n| {
        EmbeddingConfig::new(n + 1, config.time_dim())
            .with_initializer(burn::nn::Initializer::Zeros)
            .init(device)
    });
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| DiffError::invalid(format!("{what}: {}", first_line(&e.to_string()))))?;
    if let Some(e) = result.errors.first() {
        return Err(DiffError::invalid(format!(
            "{what}: {}",
            apply_error_line(e, result.errors.len())
        )));
    }
    if let Some(name) = result.unused.first() {
        return Err(DiffError::invalid(format!(
            "{what}: unexpected tensor {name} (does the config match?)"
        )));
    }
    Ok((model, config.clone()))
}

/// Loads a U-Net from a SafeTensors file.
pub fn load_file(path: &Path, device: &Device) -> Result<(UNet, UNetConfig)> {
    let bytes = std::fs::read(path)
        .map_err(|e| DiffError::invalid(format!("cannot read {}: {e}", path.display())))?;
    load_safetensors(&bytes, &path.display().to_string(), device)
}

/// A U-Net with its config, as a [`Denoiser`] (a conditional net samples with ∅ here; wrap it
/// in [`super::Guided`] to steer it).
pub struct UNetDenoiser {
    /// The network.
    pub model: UNet,
    /// Its shape.
    pub config: UNetConfig,
}

impl UNetDenoiser {
    /// Checks the batch's shape against the config.
    fn check(&self, x_t: &Tensor<4>, timesteps: &[usize]) -> Result<()> {
        let [b, c, h, w] = x_t.dims();
        let div = 1 << (self.config.channel_mult.len() - 1);
        if c != self.config.in_channels
            || !h.is_multiple_of(div)
            || !w.is_multiple_of(div)
            || timesteps.len() != b
        {
            return Err(DiffError::invalid(format!(
                "the U-Net takes [B, {}, H, W] with H, W divisible by {div}, not {:?}",
                self.config.in_channels,
                [b, c, h, w]
            )));
        }
        Ok(())
    }
}

impl super::ConditionalDenoiser for UNetDenoiser {
    fn num_classes(&self) -> Option<usize> {
        self.model.num_classes()
    }

    fn forward_labels(
        &self,
        x_t: Tensor<4>,
        timesteps: &[usize],
        labels: &[usize],
    ) -> Result<Tensor<4>> {
        self.check(&x_t, timesteps)?;
        if labels.len() != timesteps.len() {
            return Err(DiffError::invalid(format!(
                "{} labels for a batch of {}",
                labels.len(),
                timesteps.len()
            )));
        }
        Ok(self.model.forward_labels(x_t, timesteps, Some(labels)))
    }
}

impl Denoiser for UNetDenoiser {
    fn items_independent(&self) -> bool {
        true
    }

    fn prediction_type(&self) -> PredictionType {
        self.config.prediction
    }

    fn sample_shape(&self) -> [usize; 3] {
        let s = self.config.image_size;
        [self.config.in_channels, s, s]
    }

    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        self.check(&x_t, timesteps)?;
        Ok(self.model.forward(x_t, timesteps))
    }

    fn name(&self) -> String {
        let classes = match self.config.num_classes {
            Some(n) => format!(", {n} classes"),
            None => String::new(),
        };
        format!(
            "U-Net ({} params, {:?}{classes})",
            self.model.num_params(),
            self.config.prediction
        )
    }
}

/// The U-Net trained on the 10,000 bundled MNIST digits (see the README for how). It is
/// class-conditional: with ∅ for a label (what [`UNet::forward`] gives it) it is the
/// unconditional model, with a digit and a guidance scale it draws that digit.
pub const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../assets/models/mnist-unet.safetensors");

/// Loads the shipped MNIST U-Net.
pub fn shipped(device: &Device) -> Result<(UNet, UNetConfig)> {
    load_safetensors(
        SHIPPED_WEIGHTS,
        "assets/models/mnist-unet.safetensors",
        device,
    )
}

/// The flow-matching U-Net: the shipped net's architecture trained on flow matching's
/// objective (`difflab train --objective flow`, from the shipped weights; see the models page).
/// It predicts the velocity ε − x_0 and samples with flow matching's Euler.
pub const SHIPPED_FLOW_WEIGHTS: &[u8] =
    include_bytes!("../../assets/models/mnist-flow-unet.safetensors");

/// One row of [`UNet::layer_table`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    /// The part of the net ("down 1, block 1", "middle attention", …).
    pub name: String,
    /// Channels in → out (or the embedding's size).
    pub channels: String,
    /// Side of the feature map it works at, in pixels (0 for the embeddings).
    pub side: usize,
    /// Its parameters.
    pub params: usize,
}

impl UNet {
    /// The net's parts in the order data flows through them, with channels, resolution and
    /// parameter counts read from the weights themselves (lesson 7's table).
    pub fn layer_table(&self, image_size: usize) -> Vec<LayerRow> {
        use burn::module::Module;
        let conv_io = |c: &Conv2d| {
            let [out, inp, _, _] = c.weight.dims();
            (inp, out)
        };
        let block_row = |name: String, b: &ResBlock, side: usize| {
            let (i, _) = conv_io(&b.conv1);
            let (_, o) = conv_io(&b.conv2);
            LayerRow {
                name,
                channels: format!("{i} to {o}"),
                side,
                params: b.num_params(),
            }
        };
        // A conv's row; `extra` counts parameters that work with it (conv out's GroupNorm).
        let conv_row = |name: String, c: &Conv2d, side: usize, extra: usize| {
            let (i, o) = conv_io(c);
            LayerRow {
                name,
                channels: format!("{i} to {o}"),
                side,
                params: c.num_params() + extra,
            }
        };
        let mut rows = Vec::new();
        let [_, t_dim] = self.time2.weight.dims();
        rows.push(LayerRow {
            name: "time embedding (sinusoids, Linear, SiLU, Linear)".into(),
            channels: format!("{} to {t_dim}", self.time1.weight.dims()[0]),
            side: 0,
            params: self.time1.num_params() + self.time2.num_params(),
        });
        if let Some(e) = &self.class_emb {
            let [n, d] = e.weight.dims();
            rows.push(LayerRow {
                name: "class embedding (digits and the no-label row)".into(),
                channels: format!("{n} × {d}"),
                side: 0,
                params: e.num_params(),
            });
        }
        rows.push(conv_row(
            "conv in (3×3)".into(),
            &self.conv_in,
            image_size,
            0,
        ));
        let mut side = image_size;
        for (l, level) in self.down.iter().enumerate() {
            for (k, b) in level.blocks.iter().enumerate() {
                rows.push(block_row(
                    format!("down {}, residual block {}", l + 1, k + 1),
                    b,
                    side,
                ));
            }
            if let Some(d) = &level.down {
                rows.push(conv_row(
                    format!("down {}, stride-2 conv", l + 1),
                    d,
                    side,
                    0,
                ));
                side = side.div_ceil(2);
            }
        }
        rows.push(block_row(
            "middle, residual block 1".into(),
            &self.mid1,
            side,
        ));
        if let Some(a) = &self.mid_attn {
            let [c, _] = a.proj.weight.dims();
            rows.push(LayerRow {
                name: "middle, self-attention".into(),
                channels: format!("{c} to {c}"),
                side,
                params: a.num_params(),
            });
        }
        rows.push(block_row(
            "middle, residual block 2".into(),
            &self.mid2,
            side,
        ));
        let levels = self.up.len();
        for (l, level) in self.up.iter().enumerate() {
            for (k, b) in level.blocks.iter().enumerate() {
                rows.push(block_row(
                    format!("up {}, residual block {} (with a skip)", levels - l, k + 1),
                    b,
                    side,
                ));
            }
            if level.upsample {
                side = (side * 2).min(image_size);
                if let Some(c) = &level.up {
                    rows.push(conv_row(
                        format!("up {}, ×2 upsampling and conv", levels - l),
                        c,
                        side,
                        0,
                    ));
                }
            }
        }
        rows.push(conv_row(
            "GroupNorm, SiLU, conv out (3×3)".into(),
            &self.conv_out,
            image_size,
            self.norm_out.num_params(),
        ));
        rows
    }
}
