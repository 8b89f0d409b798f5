//! Training the U-Net, as in DDPM Algorithm 1: draw x_0 from the data and t uniformly,
//! ε ~ N(0, I), and regress the network at x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε onto its target (ε, or
//! v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0). AdamW with linear warm-up then cosine decay, gradient-norm
//! clipping, and an exponential moving average (EMA) of the weights, which is what samples.
//!
//! Every random draw of step k comes from (seed, k), so a run resumed from a checkpoint takes
//! exactly the steps the uninterrupted run would have taken.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::diffusion::flow_matching::{
    flow_interpolate, flow_sigma_of, flow_target, flow_timestep,
};
use crate::diffusion::noise::gaussian;
use crate::diffusion::scheduler::PredictionType;
use crate::diffusion::{NoiseSchedule, ScheduleConfig, q_sample};
use crate::error::{DiffError, Result};
use crate::model::unet::{UNet, UNetConfig};
use crate::tensor_util::{per_item, tensor4, to_vec};

/// How [`UNetTrainer::init_from`] took the earlier weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitFrom {
    /// As they were (same shape).
    Same,
    /// Widened from `from` to `to` base channels.
    Widened { from: usize, to: usize },
    /// The same shape, trained from here on to predict `to` instead of `from` (ε and v agree
    /// at low noise, so the weights are a warm start, not step 0 of the new target).
    Reparametrised {
        from: PredictionType,
        to: PredictionType,
    },
}

/// The regression loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Mean squared error (DDPM's L_simple).
    L2,
    /// Mean absolute error.
    L1,
    /// Huber (smooth L1) with δ = 1: quadratic near zero, linear beyond.
    Huber,
}

/// Training options (everything that decides the steps; saved in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total steps (the cosine decay ends here).
    pub steps: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// AdamW's weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clipping (per parameter tensor, as burn clips).
    pub clip_norm: f32,
    /// EMA decay (with the usual warm-up min(decay, (1+k)/(10+k))).
    pub ema_decay: f64,
    /// The loss.
    pub loss: LossKind,
    /// Seed of the initialisation, batches, timesteps and noise.
    pub seed: u64,
    /// The noise schedule.
    pub schedule: ScheduleConfig,
    /// Class-conditional nets: the probability that a training image's label is replaced by ∅
    /// (so the same net also learns the unconditional model that guidance needs).
    #[serde(default = "default_label_dropout")]
    pub label_dropout: f64,
    /// Set when a resumed run changed `steps`: (the step it resumed at, the learning rate there).
    /// The cosine decay then continues from that rate down to 0 at the new end, instead of
    /// jumping to where the longer schedule would have been.
    #[serde(default)]
    pub lr_restart: Option<(usize, f64)>,
    /// Min-SNR-γ loss weighting (Hang et al. 2023): each image's loss is weighted by
    /// min(SNR_t, γ)/SNR_t for ε (min(SNR_t, γ)/(SNR_t + 1) for v), so the low-noise steps,
    /// where the target is fine detail, no longer outweigh the high-noise ones that decide a
    /// digit's shape. `None`: DDPM's unweighted L_simple.
    #[serde(default)]
    pub min_snr_gamma: Option<f64>,
    /// Steps the weights had been trained before this run: the training record of the
    /// `--init-from` file (0 for a run from scratch, or a file without a record), so that the
    /// weights file's record counts every step, not only this run's.
    #[serde(default)]
    pub steps_before: usize,
    /// Class-conditional nets: draw each image's class uniformly, then an image of that class,
    /// so every digit is seen equally often (MNIST's 5s are 8.6% of the digits, its 1s 11.3%).
    /// The unconditional model (the ∅ token) then learns a mixture with equal classes.
    #[serde(default)]
    pub balance_classes: bool,
}

fn default_label_dropout() -> f64 {
    0.1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 20_000,
            batch: 64,
            lr: 2e-3,
            warmup: 200,
            weight_decay: 0.0,
            clip_norm: 1.0,
            ema_decay: 0.999,
            loss: LossKind::L2,
            seed: 0,
            schedule: ScheduleConfig::default(),
            label_dropout: default_label_dropout(),
            lr_restart: None,
            min_snr_gamma: None,
            steps_before: 0,
            balance_classes: false,
        }
    }
}

impl TrainConfig {
    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(DiffError::invalid(m.to_string()));
        if self.steps == 0 || self.steps > 1_000_000_000 {
            return bad("--steps must be between 1 and 1,000,000,000");
        }
        if self.batch == 0 || self.batch > 4096 {
            return bad("--batch must be between 1 and 4096");
        }
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return bad("--lr must be in (0, 1)");
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad("--ema-decay must be in [0, 1)");
        }
        if !(self.clip_norm > 0.0 && self.clip_norm.is_finite()) {
            return bad("--clip-norm must be > 0");
        }
        if !(0.0..1.0).contains(&self.weight_decay) {
            return bad("--weight-decay must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.label_dropout) {
            return bad("--label-dropout must be in [0, 1]");
        }
        if let Some(g) = self.min_snr_gamma
            && !(g > 0.0 && g.is_finite())
        {
            return bad("--min-snr-gamma must be a number > 0");
        }
        Ok(())
    }

    /// The learning rate at step k (0-based): linear warm-up to `lr`, then cosine decay to 0 at
    /// `steps`.
    pub fn lr_at(&self, k: usize) -> f64 {
        if let Some((k0, lr0)) = self.lr_restart
            && k >= k0
        {
            // A resumed run that changed its length: cosine from the rate at k0 to 0 at `steps`.
            let span = self.steps.saturating_sub(k0).max(1);
            let p = ((k - k0) as f64 / span as f64).min(1.0);
            return lr0 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
        }
        if k < self.warmup {
            return self.lr * (k + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1);
        let p = ((k - self.warmup) as f64 / span as f64).min(1.0);
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

/// Min-SNR-γ's loss weight at each timestep (Hang et al. 2023, and its v form):
/// min(SNR_t, γ)/SNR_t for an ε-predicting net, min(SNR_t, γ)/(SNR_t + 1) for v, where
/// SNR_t = ᾱ_t/(1 − ᾱ_t). Both equal the weight that turns the net's loss into
/// min(SNR_t, γ)·‖x̂_0 − x_0‖², the x_0 error with the easy low-noise steps capped at γ.
pub fn min_snr_weights(
    schedule: &NoiseSchedule,
    ts: &[usize],
    gamma: f64,
    prediction: PredictionType,
) -> Vec<f64> {
    ts.iter()
        .map(|&t| {
            let a = schedule.alphas_cumprod[t];
            let snr = a / (1.0 - a);
            match prediction {
                PredictionType::VPrediction => snr.min(gamma) / (snr + 1.0),
                // min(SNR, γ)/SNR, written so that SNR = 0 (ᾱ_T = 0) weighs 1, its limit.
                _ if snr <= gamma => 1.0,
                _ => gamma / snr,
            }
        })
        .collect()
}

/// Each class's image indices, in order, for the classes that have images.
pub fn indices_by_class(labels: &[usize]) -> Vec<Vec<usize>> {
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut by_class = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    by_class.retain(|c| !c.is_empty());
    by_class
}

/// A training set: images of one shape, values in [−1, 1].
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// All images, flat.
    pub pixels: Arc<Vec<f32>>,
    /// [C, H, W].
    pub shape: [usize; 3],
    /// A class label per image, for class-conditional training.
    pub labels: Option<Arc<Vec<usize>>>,
}

impl ImageSet {
    /// From a list of same-shape images.
    pub fn new(images: &[Vec<f32>], shape: [usize; 3]) -> Result<Self> {
        let n = shape.iter().product::<usize>();
        if images.is_empty() || images.iter().any(|i| i.len() != n) {
            return Err(DiffError::invalid(
                "the training set is empty or its images differ in shape",
            ));
        }
        Ok(Self {
            pixels: Arc::new(images.concat()),
            shape,
            labels: None,
        })
    }

    /// With one class label per image.
    pub fn with_labels(mut self, labels: Vec<usize>) -> Result<Self> {
        if labels.len() != self.len() {
            return Err(DiffError::invalid(format!(
                "{} labels for {} images",
                labels.len(),
                self.len()
            )));
        }
        self.labels = Some(Arc::new(labels));
        Ok(self)
    }

    /// Images in the set.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.shape.iter().product::<usize>()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A U-Net training run in progress.
pub struct UNetTrainer {
    model: Option<UNet>,
    ema: UNet,
    optim: ModuleOptimizer,
    schedule: Arc<NoiseSchedule>,
    data: ImageSet,
    /// The network's shape.
    pub unet: UNetConfig,
    /// The options.
    pub config: TrainConfig,
    device: Device,
    /// With `balance_classes`: each class's image indices (the classes with no image left out).
    by_class: Vec<Vec<usize>>,
    /// Steps taken.
    pub step: usize,
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(config.clip_norm)))
        .init()
}

impl UNetTrainer {
    /// A fresh model on `device` (an autodiff device is made from it).
    pub fn new(
        data: ImageSet,
        unet: UNetConfig,
        config: TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        unet.validate()?;
        let [c, h, w] = data.shape;
        if c != unet.in_channels || h != unet.image_size || w != unet.image_size {
            return Err(DiffError::invalid(format!(
                "the images are {c}×{h}×{w} but the U-Net takes {}×{s}×{s}",
                unet.in_channels,
                s = unet.image_size
            )));
        }
        if let Some(n) = unet.num_classes {
            let Some(labels) = &data.labels else {
                return Err(DiffError::invalid(
                    "a class-conditional U-Net needs labelled images (the MNIST digits have them)",
                ));
            };
            if let Some(bad) = labels.iter().find(|&&l| l >= n) {
                return Err(DiffError::invalid(format!(
                    "the data has label {bad}, but the U-Net has {n} classes (0 to {})",
                    n - 1
                )));
            }
        }
        let by_class = if config.balance_classes {
            let (Some(labels), Some(_)) = (&data.labels, unet.num_classes) else {
                return Err(DiffError::invalid(
                    "--balance-classes needs --classes and labelled images (the MNIST digits)",
                ));
            };
            indices_by_class(labels)
        } else {
            Vec::new()
        };
        let device = device.clone().autodiff();
        // Parameter initialisation draws from burn's RNG, seeded for reproducible runs.
        let model = unet.init_seeded(&device, config.seed)?;
        let ema = model.valid();
        Ok(Self {
            model: Some(model),
            ema,
            optim: optimizer(&config),
            schedule: Arc::new(NoiseSchedule::new(config.schedule)?),
            data,
            unet,
            config,
            device,
            by_class,
            step: 0,
        })
    }

    /// The batch of step k: image indices and timesteps, from (seed, k) alone.
    pub fn batch_of(&self, k: usize) -> (Vec<usize>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0xba7c);
        rng.set_stream(k as u64);
        let n = self.data.len();
        let t_max = self.schedule.num_timesteps();
        (0..self.config.batch)
            .map(|_| {
                let i = if self.by_class.is_empty() {
                    rng.random_range(0..n)
                } else {
                    // A class, then one of its images.
                    let class = &self.by_class[rng.random_range(0..self.by_class.len())];
                    class[rng.random_range(0..class.len())]
                };
                (i, rng.random_range(0..t_max))
            })
            .unzip()
    }

    /// The labels of step k's images (class-conditional nets), each dropped to ∅ with probability
    /// `label_dropout`, from (seed, k) alone; `None` for an unconditional net.
    pub fn labels_of(&self, k: usize, idx: &[usize]) -> Option<Vec<usize>> {
        let null = self.unet.num_classes?;
        let labels = self.data.labels.as_ref()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x1abe1);
        rng.set_stream(k as u64);
        Some(
            idx.iter()
                .map(|&i| {
                    if rng.random::<f64>() < self.config.label_dropout {
                        null
                    } else {
                        labels[i]
                    }
                })
                .collect(),
        )
    }

    /// One step of Algorithm 1; returns its loss.
    pub fn train_step(&mut self) -> Result<f32> {
        let k = self.step;
        let b = self.config.batch;
        let [c, h, w] = self.data.shape;
        let size = c * h * w;
        let (idx, ts) = self.batch_of(k);
        let mut x0 = Vec::with_capacity(b * size);
        for i in &idx {
            x0.extend_from_slice(&self.data.pixels[i * size..(i + 1) * size]);
        }
        let eps = gaussian(self.config.seed ^ 0x5eed, 1_000_000 + k as u64, b * size);
        let x0 = tensor4(x0, [b, c, h, w], &self.device);
        let eps = tensor4(eps, [b, c, h, w], &self.device);
        // x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (eq. 4).
        let t_max = self.schedule.num_timesteps();
        // Flow matching (Lipman et al. 2023): x_σ = (1 − σ)·x_0 + σ·ε, target v = ε − x_0, the
        // model called at t = σ·T; σ from the same uniform draw as diffusion's t.
        let (x_t, model_ts, target) = if self.unet.prediction == PredictionType::Flow {
            let sigma: Vec<f64> = ts.iter().map(|&t| flow_sigma_of(t, t_max)).collect();
            let model_ts: Vec<usize> = sigma.iter().map(|&s| flow_timestep(s, t_max)).collect();
            (
                flow_interpolate(x0.clone(), eps.clone(), &sigma),
                model_ts,
                flow_target(x0, eps),
            )
        } else {
            self.diffusion_input(&ts, x0, eps)?
        };
        let model = self
            .model
            .take()
            .ok_or_else(|| DiffError::Backend("no model".into()))?;
        let labels = self.labels_of(k, &idx);
        let diff = model.forward_labels(x_t, &model_ts, labels.as_deref()) - target;
        self.finish_step(k, model, diff, &ts)
    }

    /// x_t (eq. 4), its timesteps and the target (ε or v) of a diffusion step.
    fn diffusion_input(
        &self,
        ts: &[usize],
        x0: Tensor<4>,
        eps: Tensor<4>,
    ) -> Result<(Tensor<4>, Vec<usize>, Tensor<4>)> {
        let x_t = q_sample(&self.schedule, x0.clone(), ts, eps.clone())?;
        let target = match self.unet.prediction {
            // v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0 (Salimans & Ho 2022).
            PredictionType::VPrediction => {
                let sa: Vec<f64> = ts
                    .iter()
                    .map(|&t| self.schedule.sqrt_alphas_cumprod[t])
                    .collect();
                let so: Vec<f64> = ts
                    .iter()
                    .map(|&t| self.schedule.sqrt_one_minus_alphas_cumprod[t])
                    .collect();
                per_item(&sa, &self.device) * eps - per_item(&so, &self.device) * x0
            }
            _ => eps,
        };
        Ok((x_t, ts.to_vec(), target))
    }

    /// The loss of `diff` (model output − target), its step, the EMA; the loss.
    fn finish_step(&mut self, k: usize, model: UNet, diff: Tensor<4>, ts: &[usize]) -> Result<f32> {
        let per_pixel = match self.config.loss {
            LossKind::L2 => diff.powi_scalar(2),
            LossKind::L1 => diff.abs(),
            LossKind::Huber => {
                // 0.5·min(|d|, 1)² + (|d| − min(|d|, 1))
                let a = diff.abs();
                let q = a.clone().clamp_max(1.0);
                q.clone().powi_scalar(2) * 0.5 + (a - q)
            }
        };
        let loss = match self.config.min_snr_gamma {
            Some(gamma) => {
                let w = min_snr_weights(&self.schedule, ts, gamma, self.unet.prediction);
                (per_pixel * per_item(&w, &self.device)).mean()
            }
            None => per_pixel.mean(),
        };
        let value = to_vec(loss.clone())?.first().copied().unwrap_or(f32::NAN);
        if !value.is_finite() {
            self.model = Some(model);
            return Err(DiffError::NonFinite(format!(
                "the loss is {value} at step {k}: the training diverged"
            )));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = self.optim.step(self.config.lr_at(k), model, grads);
        // EMA with warm-up: early steps follow the weights closely.
        let decay = self.config.ema_decay.min((1 + k) as f64 / (10 + k) as f64);
        let ema = ema_update(self.ema.clone(), &model.valid(), decay);
        self.model = Some(model);
        self.ema = ema?;
        self.step += 1;
        Ok(value)
    }

    /// Starts from the weights of an earlier model (a SafeTensors file of the same shape, which
    /// may predict the other target (ε or v): it then learns this run's; a
    /// conditional run may start from an unconditional file: its class embedding starts at
    /// zero, so step 0 is exactly the earlier model). A file with half this run's base channels
    /// (the rest of the shape the same) is widened first ([`UNet::widened`]): step 0 then
    /// computes what the narrow model did. Before the first step only.
    pub fn init_from(&mut self, bytes: &[u8], what: &str) -> Result<InitFrom> {
        if self.step != 0 {
            return Err(DiffError::invalid("--init-from applies to a new run only"));
        }
        let theirs = crate::model::unet::read_config(bytes, what)?;
        let steps_before =
            crate::model::unet::read_training_record(bytes, what)?.map_or(0, |r| r.steps_trained);
        let half = UNetConfig {
            num_classes: self.unet.num_classes,
            base_channels: 2 * theirs.base_channels,
            ..theirs.clone()
        };
        if half == self.unet {
            let wide = crate::model::unet::widen_safetensors(bytes, what, self.config.seed)?;
            self.init_from(&wide, what)?;
            // The wide net computes what the narrow one did: its steps count.
            self.config.steps_before = steps_before;
            return Ok(InitFrom::Widened {
                from: theirs.base_channels,
                to: self.unet.base_channels,
            });
        }
        let same_shape = UNetConfig {
            num_classes: self.unet.num_classes,
            prediction: self.unet.prediction,
            ..theirs.clone()
        };
        if same_shape != self.unet {
            return Err(DiffError::invalid(format!(
                "{what} has another shape than this run (its config: {})",
                serde_json::to_string(&theirs).unwrap_or_default()
            )));
        }
        if theirs.num_classes.is_some() && theirs.num_classes != self.unet.num_classes {
            let classes = |n: Option<usize>| n.map_or("none".to_string(), |n| n.to_string());
            return Err(DiffError::invalid(format!(
                "{what} was trained with {} classes, this run has {} (--classes)",
                classes(theirs.num_classes),
                classes(self.unet.num_classes)
            )));
        }
        let device = self.device.clone();
        let (loaded, _) =
            crate::model::unet::load_safetensors_partial(bytes, what, &self.unet, &device)?;
        self.model = Some(loaded);
        self.ema = self.raw()?;
        self.config.steps_before = steps_before;
        Ok(if theirs.prediction == self.unet.prediction {
            InitFrom::Same
        } else {
            InitFrom::Reparametrised {
                from: theirs.prediction,
                to: self.unet.prediction,
            }
        })
    }

    /// Continues with peak learning rate `lr` from the current step: a cosine decay from `lr`
    /// to 0 at the end (for a resumed run that diverged, with a lower rate).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        if !(lr > 0.0 && lr < 1.0) {
            return Err(DiffError::invalid("--lr must be in (0, 1)"));
        }
        self.config.lr = lr;
        self.config.lr_restart = Some((self.step, lr));
        Ok(())
    }

    /// Whether every weight of the model and of its EMA is finite (checked before a checkpoint
    /// is written, so a step whose gradient overflowed never replaces the last good one).
    pub fn weights_finite(&self) -> bool {
        struct Finite(bool);
        impl ModuleVisitor for Finite {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if self.0 {
                    let n = param.val().shape().num_elements();
                    let v = crate::tensor_util::to_vec(param.val().reshape([n]));
                    self.0 = v.is_ok_and(|v| v.iter().all(|x| x.is_finite()));
                }
            }
        }
        let mut f = Finite(true);
        if let Some(m) = &self.model {
            m.visit(&mut f);
        }
        self.ema.visit(&mut f);
        f.0
    }

    /// The EMA weights, for sampling.
    pub fn ema(&self) -> UNet {
        self.ema.clone()
    }

    /// The raw (non-EMA) weights, without autodiff.
    pub fn raw(&self) -> Result<UNet> {
        self.model
            .as_ref()
            .map(burn::module::Module::valid)
            .ok_or_else(|| DiffError::Backend("no model".into()))
    }

    /// Writes a checkpoint (model, EMA, optimiser state, step, options) atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| DiffError::Backend("no model".into()))?;
        let header = CheckpointHeader {
            version: CHECKPOINT_VERSION,
            step: self.step,
            unet: self.unet.clone(),
            config: self.config.clone(),
            data_len: self.data.len(),
        };
        let blobs = [
            serde_json::to_vec(&header)
                .map_err(|e| DiffError::Backend(format!("checkpoint header: {e}")))?,
            burnpack_bytes(model)?,
            burnpack_bytes(&self.ema)?,
            self.optim
                .into_bytes()
                .map_err(|e| DiffError::Backend(format!("optimiser state: {e}")))?
                .to_vec(),
        ];
        let mut out = Vec::new();
        out.extend_from_slice(CHECKPOINT_MAGIC);
        for b in &blobs {
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        crate::data::image_io::write_atomic(path, &out)
    }

    /// Resumes from a checkpoint. `steps`, when given, replaces the total (to train on past the
    /// original end); everything else comes from the checkpoint.
    pub fn resume(
        path: &Path,
        data: ImageSet,
        steps: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| DiffError::file(path, e))?;
        let bad = |m: String| DiffError::invalid(format!("{what}: {m}"));
        let rest = bytes
            .strip_prefix(CHECKPOINT_MAGIC.as_slice())
            .ok_or_else(|| bad("not a difflab checkpoint".into()))?;
        let mut blobs = Vec::new();
        let mut at = rest;
        for _ in 0..4 {
            if at.len() < 8 {
                return Err(bad("truncated".into()));
            }
            let mut n8 = [0u8; 8];
            n8.copy_from_slice(&at[..8]);
            let n = u64::from_le_bytes(n8) as usize;
            if at.len() - 8 < n {
                return Err(bad("truncated".into()));
            }
            blobs.push(&at[8..8 + n]);
            at = &at[8 + n..];
        }
        let header: CheckpointHeader =
            serde_json::from_slice(blobs[0]).map_err(|e| bad(format!("bad header ({e})")))?;
        if header.data_len != data.len() {
            return Err(bad(format!(
                "it was trained on {} images, this data has {}; use the same --data",
                header.data_len,
                data.len()
            )));
        }
        if header.version != CHECKPOINT_VERSION {
            return Err(bad(format!(
                "checkpoint format {} (this difflab reads format {CHECKPOINT_VERSION})",
                header.version
            )));
        }
        header
            .config
            .validate()
            .and_then(|()| header.unet.validate())
            .map_err(|e| bad(format!("damaged: its stored options are invalid ({e})")))?;
        if header.step > header.config.steps {
            return Err(bad(format!(
                "damaged: it is at step {} of a {}-step run",
                header.step, header.config.steps
            )));
        }
        if let Some(s) = steps
            && s < header.step
        {
            return Err(DiffError::invalid(format!(
                "--steps {s} is fewer than the {} steps the checkpoint has trained: a resumed run \
                 only goes on (--steps {} or more)",
                header.step, header.step
            )));
        }
        let mut config = header.config;
        if let Some(s) = steps
            && s != config.steps
        {
            // Continue the decay from the rate the run had reached, not from where a schedule
            // of the new length would be (which jumps up when the run is extended).
            // A run that had decayed to (almost) nothing restarts at a tenth of its peak rate,
            // or the extra steps would not train.
            let lr = config.lr_at(header.step).max(0.1 * config.lr);
            config.lr_restart = Some((header.step, lr));
            config.steps = s;
        }
        let mut t = Self::new(data, header.unet, config, device)?;
        let mut model = t
            .model
            .take()
            .ok_or_else(|| DiffError::Backend("no model".into()))?;
        load_burnpack(&mut model, blobs[1], &what)?;
        load_burnpack(&mut t.ema, blobs[2], &what)?;
        let optim = optimizer(&t.config);
        t.optim = crate::error::catch_dependency_panic(
            &format!("{what} is damaged: its optimiser state is incomplete"),
            || {
                optim
                    .from_bytes(burn::tensor::Bytes::from_bytes_vec(blobs[3].to_vec()))
                    .map_err(|e| bad(format!("optimiser state ({e})")))
            },
        )?;
        t.model = Some(model);
        t.step = header.step;
        Ok(t)
    }
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"DLCKPT1\n";

/// The checkpoint header's format.
const CHECKPOINT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CheckpointHeader {
    version: u32,
    step: usize,
    unet: UNetConfig,
    config: TrainConfig,
    data_len: usize,
}

fn burnpack_bytes(m: &UNet) -> Result<Vec<u8>> {
    let mut store = BurnpackStore::from_bytes(None);
    m.save_into(&mut store)
        .map_err(|e| DiffError::Backend(format!("cannot save the model: {e}")))?;
    Ok(store
        .get_bytes()
        .map_err(|e| DiffError::Backend(format!("cannot save the model: {e}")))?
        .to_vec())
}

fn load_burnpack(m: &mut UNet, bytes: &[u8], what: &str) -> Result<()> {
    let mut store =
        BurnpackStore::from_bytes(Some(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec())));
    // burn's error lists every tensor; one line says what is wrong.
    let r = m.load_from(&mut store).map_err(|_| {
        DiffError::invalid(format!(
            "{what} is damaged: its weights do not fit the model its header describes"
        ))
    })?;
    if !r.errors.is_empty() || !r.missing.is_empty() || !r.unused.is_empty() {
        return Err(DiffError::invalid(format!(
            "{what}: the checkpoint does not match its model ({} errors, {} missing, {} unused)",
            r.errors.len(),
            r.missing.len(),
            r.unused.len()
        )));
    }
    Ok(())
}

/// Collects a module's float parameters by id, flattened.
struct Collect(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.insert(param.id, t.reshape([n]));
    }
}

/// ema ← d·ema + (1 − d)·θ for every parameter, matched by id.
struct EmaStep {
    current: HashMap<ParamId, Tensor<1>>,
    decay: f64,
    /// Parameters of the EMA with no counterpart in the model (a bug if ever non-zero).
    unmatched: usize,
}

impl ModuleMapper for EmaStep {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(cur) = self.current.remove(&param.id) else {
            self.unmatched += 1;
            return param;
        };
        let d = self.decay;
        param.map(|e| {
            let dims = e.dims();
            e * d + cur.reshape(dims) * (1.0 - d)
        })
    }
}

/// One EMA step of `ema` towards `current`, parameters matched by id. Every parameter of each
/// must have its counterpart in the other (the EMA starts as a copy of the model); otherwise
/// this is an error rather than an EMA that silently stops following some weights.
pub fn ema_update(ema: UNet, current: &UNet, decay: f64) -> Result<UNet> {
    let mut c = Collect(HashMap::new());
    current.visit(&mut c);
    let mut step = EmaStep {
        current: c.0,
        decay,
        unmatched: 0,
    };
    let ema = ema.map(&mut step);
    if step.unmatched > 0 || !step.current.is_empty() {
        return Err(DiffError::Backend(format!(
            "EMA: {} parameters of the EMA and {} of the model have no counterpart (their ids \
             differ)",
            step.unmatched,
            step.current.len()
        )));
    }
    Ok(ema)
}

/// Appends lines to a CSV file, creating it with `header` first.
pub fn append_csv(path: &Path, header: &str, lines: &[String]) -> Result<()> {
    let exists = path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| DiffError::file(path, e))?;
    let mut s = String::new();
    if !exists {
        s += header;
        s.push('\n');
    }
    for l in lines {
        s += l;
        s.push('\n');
    }
    f.write_all(s.as_bytes())
        .map_err(|e| DiffError::file(path, e))
}
