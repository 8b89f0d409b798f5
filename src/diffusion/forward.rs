//! The forward (noising) process q (Ho et al. 2020, §2).
//!
//! Tensors are [B, C, H, W]; `t` holds one timestep per batch item, so a batch can mix
//! timesteps (as training does).

use burn::tensor::Tensor;

use super::schedule::NoiseSchedule;
use crate::error::{DiffError, Result};
use crate::tensor_util::per_item;

fn check_batch(t: &[usize], batch: usize, schedule: &NoiseSchedule) -> Result<()> {
    if t.len() != batch {
        return Err(DiffError::invalid(format!(
            "{} timesteps given for a batch of {batch}",
            t.len()
        )));
    }
    t.iter().try_for_each(|t| schedule.check_t(*t))
}

/// x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε  (Ho et al. eq. 4, reparameterised).
pub fn q_sample(
    schedule: &NoiseSchedule,
    x0: Tensor<4>,
    t: &[usize],
    noise: Tensor<4>,
) -> Result<Tensor<4>> {
    let [b, ..] = x0.dims();
    check_batch(t, b, schedule)?;
    let device = x0.device();
    let signal: Vec<f64> = t.iter().map(|t| schedule.sqrt_alphas_cumprod[*t]).collect();
    let sigma: Vec<f64> = t
        .iter()
        .map(|t| schedule.sqrt_one_minus_alphas_cumprod[*t])
        .collect();
    Ok(x0 * per_item(&signal, &device) + noise * per_item(&sigma, &device))
}

/// One Markov step of the forward chain: x_t = √(1−β_t)·x_{t−1} + √β_t·z  (Ho et al. eq. 2).
/// Walking it from x_0 agrees in distribution with [`q_sample`].
pub fn q_step(
    schedule: &NoiseSchedule,
    x_prev: Tensor<4>,
    t: usize,
    z: Tensor<4>,
) -> Result<Tensor<4>> {
    schedule.check_t(t)?;
    let beta = schedule.betas[t];
    Ok(x_prev.mul_scalar((1.0 - beta).sqrt() as f32) + z.mul_scalar(beta.sqrt() as f32))
}

/// The posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t·I).
pub struct Posterior {
    /// μ̃_t(x_t, x_0) = √ᾱ_{t−1}·β_t/(1−ᾱ_t)·x_0 + √α_t·(1−ᾱ_{t−1})/(1−ᾱ_t)·x_t  (eq. 7).
    pub mean: Tensor<4>,
    /// β̃_t per batch item.
    pub variance: Vec<f64>,
}

/// μ̃_t and β̃_t of q(x_{t−1} | x_t, x_0)  (Ho et al. eqs. 6–7).
pub fn q_posterior(
    schedule: &NoiseSchedule,
    x0: Tensor<4>,
    x_t: Tensor<4>,
    t: &[usize],
) -> Result<Posterior> {
    let [b, ..] = x0.dims();
    check_batch(t, b, schedule)?;
    let device = x0.device();
    let coef_x0: Vec<f64> = t
        .iter()
        .map(|&t| {
            schedule.alphas_cumprod_prev[t].sqrt() * schedule.betas[t]
                / (1.0 - schedule.alphas_cumprod[t])
        })
        .collect();
    let coef_xt: Vec<f64> = t
        .iter()
        .map(|&t| {
            schedule.alphas[t].sqrt() * (1.0 - schedule.alphas_cumprod_prev[t])
                / (1.0 - schedule.alphas_cumprod[t])
        })
        .collect();
    let mean = x0 * per_item(&coef_x0, &device) + x_t * per_item(&coef_xt, &device);
    let variance = t.iter().map(|&t| schedule.posterior_variance[t]).collect();
    Ok(Posterior { mean, variance })
}
