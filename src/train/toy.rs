//! Training the 2-D MLP denoiser, as in DDPM Algorithm 1: draw x_0 from the data, t uniformly,
//! ε ~ N(0, I), and regress ε̂(√ᾱ_t·x_0 + √(1−ᾱ_t)·ε, t) onto ε with the L2 loss. Everything
//! random is seeded, so the same seed and config give the same losses.

use std::sync::Arc;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::diffusion::noise::gaussian;
use crate::diffusion::{NoiseSchedule, q_sample};
use crate::error::{DiffError, Result};
use crate::model::toy_mlp::{ToyMlp, ToyMlpConfig};
use crate::tensor_util::{tensor4, to_vec};

/// Training options.
#[derive(Clone, Copy, Debug)]
pub struct ToyTrainConfig {
    /// Points per step.
    pub batch: usize,
    /// AdamW's learning rate.
    pub lr: f64,
    /// Seed of the batches, timesteps and noise.
    pub seed: u64,
}

impl Default for ToyTrainConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            lr: 2e-3,
            seed: 0,
        }
    }
}

/// The largest batch the toy trainer takes (points per step).
pub const MAX_TOY_BATCH: usize = 65_536;

/// The widest hidden layer the toy MLP may have.
pub const MAX_TOY_HIDDEN: usize = 4096;

/// A training run in progress.
pub struct ToyTrainer {
    model: Option<ToyMlp>,
    optim: ModuleOptimizer,
    schedule: Arc<NoiseSchedule>,
    data: Vec<[f32; 2]>,
    config: ToyTrainConfig,
    rng: ChaCha8Rng,
    device: Device,
    /// Steps taken.
    pub step: usize,
    /// The loss of every step.
    pub losses: Vec<f32>,
}

impl ToyTrainer {
    /// A fresh model on `device` (an autodiff device is made from it).
    pub fn new(
        data: Vec<[f32; 2]>,
        schedule: Arc<NoiseSchedule>,
        model: &ToyMlpConfig,
        config: ToyTrainConfig,
        device: &Device,
    ) -> Result<Self> {
        if data.is_empty() {
            return Err(DiffError::invalid("the training set is empty"));
        }
        if config.batch == 0 || !(config.lr > 0.0 && config.lr.is_finite()) {
            return Err(DiffError::invalid(
                "the batch must be ≥ 1 and the learning rate > 0",
            ));
        }
        // Bounds that keep a typo from asking for gigabytes (or a zero-width layer, which
        // cannot be initialised).
        if config.batch > MAX_TOY_BATCH {
            return Err(DiffError::invalid(format!(
                "a batch of {} points is too large (at most {MAX_TOY_BATCH})",
                config.batch
            )));
        }
        if model.hidden == 0 || model.hidden > MAX_TOY_HIDDEN {
            return Err(DiffError::invalid(format!(
                "{} hidden units: the MLP needs between 1 and {MAX_TOY_HIDDEN} per layer",
                model.hidden
            )));
        }
        let device = device.clone().autodiff();
        // Parameter initialisation draws from burn's RNG, seeded for reproducible runs.
        let mlp = crate::model::init_with_rng(&device, Some(config.seed), || model.init(&device));
        Ok(Self {
            model: Some(mlp),
            optim: AdamWConfig::new().with_weight_decay(0.0).init(),
            schedule,
            data,
            config,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            device,
            step: 0,
            losses: Vec::new(),
        })
    }

    /// One step of Algorithm 1; returns its loss.
    pub fn train_step(&mut self) -> Result<f32> {
        let b = self.config.batch;
        let t_max = self.schedule.num_timesteps();
        let mut x0 = Vec::with_capacity(2 * b);
        let mut ts = Vec::with_capacity(b);
        for _ in 0..b {
            let p = self.data[self.rng.random_range(0..self.data.len())];
            x0.extend(p);
            ts.push(self.rng.random_range(0..t_max));
        }
        let eps = gaussian(
            self.config.seed ^ 0x5eed,
            1_000_000 + self.step as u64,
            2 * b,
        );
        let x0 = tensor4(x0, [b, 2, 1, 1], &self.device);
        let eps_t = tensor4(eps, [b, 2, 1, 1], &self.device);
        let x_t = q_sample(&self.schedule, x0, &ts, eps_t.clone())?;
        let model = self
            .model
            .take()
            .ok_or_else(|| DiffError::Backend("no model".into()))?;
        let pred = model.forward(x_t.reshape([b, 2]), &ts);
        let loss = (pred - eps_t.reshape([b, 2])).powi_scalar(2).mean();
        let value = to_vec(loss.clone())?.first().copied().unwrap_or(f32::NAN);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.config.lr, model, grads));
        self.step += 1;
        self.losses.push(value);
        Ok(value)
    }

    /// The model for sampling (no autodiff).
    pub fn model(&self) -> Result<ToyMlp> {
        self.model
            .as_ref()
            .map(Module::valid)
            .ok_or_else(|| DiffError::Backend("no model".into()))
    }

    /// The running mean of the last `n` losses.
    pub fn recent_loss(&self, n: usize) -> f32 {
        let k = self.losses.len().min(n).max(1);
        self.losses.iter().rev().take(k).sum::<f32>() / k as f32
    }
}

/// A 2-D point tensor [N, 2, 1, 1] back to points.
pub fn points_of(x: Tensor<4>) -> Result<Vec<[f32; 2]>> {
    Ok(to_vec(x)?.chunks(2).map(|c| [c[0], c[1]]).collect())
}
