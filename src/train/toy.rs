//! Training the 2-D MLP denoiser, as in DDPM Algorithm 1: draw x_0 from the data, t uniformly,
//! ε ~ N(0, I), and regress ε̂(√ᾱ_t·x_0 + √(1−ᾱ_t)·ε, t) onto ε with the L2 loss. Everything
//! random is seeded, so the same seed and config give the same losses.

use std::sync::Arc;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::diffusion::flow_matching::{
    flow_interpolate, flow_sigma_of, flow_target, flow_timestep,
};
use crate::diffusion::noise::gaussian;
use crate::diffusion::{NoiseSchedule, q_sample};
use crate::error::{DiffError, Result};
use crate::model::toy_mlp::{ToyMlp, ToyMlpConfig};
use crate::tensor_util::{tensor4, to_vec};

/// What the MLP learns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ToyObjective {
    /// DDPM's: ε̂(x_t, t) ≈ ε.
    #[default]
    Epsilon,
    /// Flow matching's: v(x_σ, σ) ≈ ε − x_0 on x_σ = (1 − σ)·x_0 + σ·ε (see
    /// [`crate::diffusion::flow_matching`]).
    Flow,
}

/// Training options.
#[derive(Clone, Copy, Debug)]
pub struct ToyTrainConfig {
    /// What the MLP learns.
    pub objective: ToyObjective,
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
            objective: ToyObjective::Epsilon,
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
    /// Reflow's (noise, sample) pairs, trained on instead of the data (flow objective only).
    pairs: Option<Vec<([f32; 2], [f32; 2])>>,
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
            pairs: None,
        })
    }

    /// Reflow (Liu et al. 2023): from now on the flow model trains on these (noise, sample)
    /// pairs, each connected by its straight line, instead of on (data, fresh noise). The
    /// model and the optimiser go on from where they are.
    pub fn reflow_on(&mut self, pairs: Vec<([f32; 2], [f32; 2])>) -> Result<()> {
        if self.config.objective != ToyObjective::Flow {
            return Err(DiffError::invalid("reflow trains a flow-matching model"));
        }
        if pairs.is_empty() {
            return Err(DiffError::invalid("reflow needs at least one pair"));
        }
        self.pairs = Some(pairs);
        Ok(())
    }

    /// One step of Algorithm 1 (or flow matching's); returns its loss.
    pub fn train_step(&mut self) -> Result<f32> {
        let b = self.config.batch;
        let t_max = self.schedule.num_timesteps();
        let mut x0 = Vec::with_capacity(2 * b);
        let mut ts = Vec::with_capacity(b);
        let mut paired_noise = Vec::new();
        for _ in 0..b {
            match &self.pairs {
                Some(pairs) => {
                    let (z, x) = pairs[self.rng.random_range(0..pairs.len())];
                    x0.extend(x);
                    paired_noise.extend(z);
                }
                None => x0.extend(self.data[self.rng.random_range(0..self.data.len())]),
            }
            ts.push(self.rng.random_range(0..t_max));
        }
        let eps = if self.pairs.is_some() {
            paired_noise
        } else {
            gaussian(
                self.config.seed ^ 0x5eed,
                1_000_000 + self.step as u64,
                2 * b,
            )
        };
        let x0 = tensor4(x0, [b, 2, 1, 1], &self.device);
        let eps_t = tensor4(eps, [b, 2, 1, 1], &self.device);
        let (x_t, target) = match self.config.objective {
            ToyObjective::Epsilon => (q_sample(&self.schedule, x0, &ts, eps_t.clone())?, eps_t),
            ToyObjective::Flow => {
                let sigma: Vec<f64> = ts.iter().map(|&t| flow_sigma_of(t, t_max)).collect();
                // The model is called at t = σ·T (as the flow Euler sampler calls it).
                for (t, s) in ts.iter_mut().zip(&sigma) {
                    *t = flow_timestep(*s, t_max);
                }
                (
                    flow_interpolate(x0.clone(), eps_t.clone(), &sigma),
                    flow_target(x0, eps_t),
                )
            }
        };
        let model = self
            .model
            .take()
            .ok_or_else(|| DiffError::Backend("no model".into()))?;
        let pred = model.forward(x_t.reshape([b, 2]), &ts);
        let loss = (pred - target.reshape([b, 2])).powi_scalar(2).mean();
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
