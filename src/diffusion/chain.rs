//! The forward process walked step by step, x_t = √(1−β_t)·x_{t−1} + √β_t·z_t (Ho et al. eq. 2),
//! to set beside the one-shot q(x_t | x_0). The two agree in distribution, not pixel for pixel.
//!
//! Scrubbing a timeline asks for x_t at many t, so the chain keeps a checkpoint every
//! [`CHECKPOINT_EVERY`] steps and walks on from the nearest one below t.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Tensor;

use super::forward::q_step;
use super::noise::chain_noise;
use super::schedule::NoiseSchedule;
use crate::error::Result;

/// Steps between two kept states.
pub const CHECKPOINT_EVERY: usize = 25;

/// A forward Markov chain from one x_0 with seeded per-step noise.
pub struct ForwardChain {
    schedule: Arc<NoiseSchedule>,
    seed: u64,
    /// x after `k` steps (k = 0 is x_0), for k a multiple of [`CHECKPOINT_EVERY`].
    checkpoints: BTreeMap<usize, Tensor<4>>,
    /// The furthest state reached (also when a walk was cancelled), so no work is lost.
    frontier: Option<(usize, Tensor<4>)>,
}

impl ForwardChain {
    /// A chain from `x0` ([B, C, H, W]); step t draws z_t from `seed` (see
    /// [`chain_noise`](super::noise::chain_noise)).
    pub fn new(schedule: Arc<NoiseSchedule>, x0: Tensor<4>, seed: u64) -> Self {
        let mut checkpoints = BTreeMap::new();
        checkpoints.insert(0, x0);
        Self {
            schedule,
            seed,
            checkpoints,
            frontier: None,
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> &Arc<NoiseSchedule> {
        &self.schedule
    }

    /// The seed of the per-step noise.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The chain's state after `steps` steps, i.e. x_t for t = `steps` in the 1-based numbering
    /// of the paper (0 gives x_0; the 0-based timestep t runs the steps 0..=t, so pass t + 1).
    /// Returns `None` if `cancel` was set between steps.
    pub fn state_after(&mut self, steps: usize, cancel: &AtomicBool) -> Result<Option<Tensor<4>>> {
        let t_max = self.schedule.num_timesteps();
        let steps = steps.min(t_max);
        let (&from_checkpoint, x) = self
            .checkpoints
            .range(..=steps)
            .next_back()
            .expect("the chain always holds x_0");
        let (start, mut x) = match &self.frontier {
            Some((k, fx)) if *k <= steps && *k > from_checkpoint => (*k, fx.clone()),
            _ => (from_checkpoint, x.clone()),
        };
        let shape = x.dims();
        let device = x.device();
        for k in start..steps {
            if cancel.load(Ordering::Relaxed) {
                self.frontier = Some((k, x));
                return Ok(None);
            }
            // Step k takes x after k steps to x after k + 1 steps, with β of timestep k.
            let z = chain_noise(self.seed, k, shape, &device);
            x = q_step(&self.schedule, x, k, z)?;
            if (k + 1) % CHECKPOINT_EVERY == 0 {
                self.checkpoints.insert(k + 1, x.clone());
            }
        }
        self.frontier = Some((steps, x.clone()));
        Ok(Some(x))
    }
}
