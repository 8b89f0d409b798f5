//! What the σ-based solvers share: σ_t = √((1−ᾱ_t)/ᾱ_t) of the training schedule, Karras σ,
//! and diffusers' interpolation between σ and t.

use serde_json::Value;

use crate::diffusion::{BetaSchedule, NoiseSchedule, ScheduleConfig};
use crate::error::Result;

/// The training schedule a diffusers config names (`num_train_timesteps`, `beta_start`,
/// `beta_end`, `beta_schedule`; diffusers' defaults 1000, 1e-4, 0.02, "linear").
pub fn schedule_of(config: &Value) -> Result<NoiseSchedule> {
    let get = |k: &str, d: f64| config.get(k).and_then(Value::as_f64).unwrap_or(d);
    NoiseSchedule::new(ScheduleConfig {
        kind: BetaSchedule::parse(
            config
                .get("beta_schedule")
                .and_then(Value::as_str)
                .unwrap_or("linear"),
        )?,
        num_train_timesteps: config
            .get("num_train_timesteps")
            .and_then(Value::as_u64)
            .map_or(1000, |n| n as usize),
        beta_start: get("beta_start", 1e-4),
        beta_end: get("beta_end", 0.02),
    })
}

/// σ_t = √((1−ᾱ_t)/ᾱ_t) for every training t: the noise-to-signal ratio the probability-flow
/// ODE is written in (Karras et al. 2022, eq. 4 with s(t) = 1 after scaling by √ᾱ).
pub fn training_sigmas(alphas_cumprod: &[f64]) -> Vec<f64> {
    alphas_cumprod
        .iter()
        .map(|a| ((1.0 - a) / a).sqrt())
        .collect()
}

/// Karras et al. 2022, eq. 5: σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,
/// i = 0..N−1, from σ_max down to σ_min (ρ = 7).
pub fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize, rho: f64) -> Vec<f64> {
    let (lo, hi) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    (0..n)
        .map(|i| {
            let ramp = if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.0
            };
            (hi + ramp * (lo - hi)).powf(rho)
        })
        .collect()
}

/// The (fractional) training t whose σ is `sigma`: diffusers' `_sigma_to_t`, linear
/// interpolation in log σ between the two neighbouring training σ.
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // The last index whose log σ is ≤ log_sigma, kept inside 0..len−2.
    let n = log_sigmas.len();
    let low = log_sigmas
        .iter()
        .rposition(|&l| log_sigma - l >= 0.0)
        .unwrap_or(0)
        .min(n.saturating_sub(2));
    let high = low + 1;
    let (l, h) = (log_sigmas[low], log_sigmas[high]);
    let w = ((l - log_sigma) / (l - h)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * high as f64
}

/// numpy's `linspace(a, b, n)`, as the schedules compute it (start + i·step, the end exact).
pub use crate::diffusion::schedule::linspace;

/// σ at a fractional training t, by linear interpolation of the training σ (numpy's
/// `np.interp(t, arange(T), sigmas)`).
pub fn interp_sigma(t: f64, sigmas: &[f64]) -> f64 {
    let last = sigmas.len() - 1;
    let t = t.clamp(0.0, last as f64);
    let i = (t.floor() as usize).min(last.saturating_sub(1));
    let w = t - i as f64;
    if last == 0 {
        return sigmas[0];
    }
    sigmas[i] * (1.0 - w) + sigmas[i + 1] * w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn karras_runs_from_max_to_min() {
        let s = karras_sigmas(0.1, 10.0, 5, 7.0);
        assert!((s[0] - 10.0).abs() < 1e-12 && (s[4] - 0.1).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn sigma_to_t_inverts_the_training_sigmas() {
        let sched = schedule_of(&serde_json::json!({})).unwrap();
        let sig = training_sigmas(&sched.alphas_cumprod);
        let logs: Vec<f64> = sig.iter().map(|s| s.ln()).collect();
        for t in [0usize, 1, 17, 500, 998, 999] {
            assert!((sigma_to_t(sig[t], &logs) - t as f64).abs() < 1e-9, "{t}");
        }
        let mid = (sig[10] * sig[11]).sqrt();
        assert!((sigma_to_t(mid, &logs) - 10.5).abs() < 1e-9);
        assert!((interp_sigma(10.5, &sig) - 0.5 * (sig[10] + sig[11])).abs() < 1e-12);
    }
}
