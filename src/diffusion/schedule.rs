//! Noise schedules: β_t and everything derived from it (Ho et al. 2020, §2; Nichol & Dhariwal
//! 2021, §3.2 for the cosine schedule).
//!
//! The numbers follow diffusers' `DDPMScheduler.__init__`: β is computed in double precision and
//! rounded to f32, α_t = 1 − β_t is taken in f32, and ᾱ_t = Π α_s is accumulated in double
//! precision and rounded to f32. Everything else is derived from those f32 values in f64.

use serde::{Deserialize, Serialize};

use crate::error::{DiffError, Result};

/// The largest T a schedule may have (keeps memory and UI sane).
pub const MAX_TIMESTEPS: usize = 100_000;

/// The cap on β used by the cosine schedule (diffusers' `max_beta`).
pub const COSINE_MAX_BETA: f64 = 0.999;

/// How β_t grows with t.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BetaSchedule {
    /// β_t linear from β_start to β_end (Ho et al. 2020).
    Linear,
    /// √β_t linear from √β_start to √β_end (Stable Diffusion's default).
    ScaledLinear,
    /// Nichol & Dhariwal's cosine schedule: ᾱ(t) = cos²(((t/T + s)/(1 + s))·π/2), s = 0.008,
    /// β capped at 0.999 (diffusers' "squaredcos_cap_v2"). Ignores β_start and β_end.
    Cosine,
    /// β_t = σ(linspace(−6, 6)) scaled into [β_start, β_end].
    Sigmoid,
}

impl BetaSchedule {
    /// Every schedule, in display order.
    pub const ALL: [BetaSchedule; 4] = [
        BetaSchedule::Linear,
        BetaSchedule::ScaledLinear,
        BetaSchedule::Cosine,
        BetaSchedule::Sigmoid,
    ];

    /// The CLI / file name of the schedule.
    pub fn name(self) -> &'static str {
        match self {
            BetaSchedule::Linear => "linear",
            BetaSchedule::ScaledLinear => "scaled-linear",
            BetaSchedule::Cosine => "cosine",
            BetaSchedule::Sigmoid => "sigmoid",
        }
    }

    /// Parses the names used here and diffusers' config names.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "linear" => Ok(BetaSchedule::Linear),
            "scaled-linear" | "scaled_linear" => Ok(BetaSchedule::ScaledLinear),
            "cosine" | "squaredcos_cap_v2" => Ok(BetaSchedule::Cosine),
            "sigmoid" => Ok(BetaSchedule::Sigmoid),
            other => Err(DiffError::invalid(format!(
                "unknown schedule '{other}' (expected linear, scaled-linear, cosine or sigmoid)"
            ))),
        }
    }
}

impl std::fmt::Display for BetaSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a schedule is made from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// The schedule's shape.
    pub kind: BetaSchedule,
    /// T, the number of diffusion steps.
    pub num_train_timesteps: usize,
    /// β_1 (ignored by the cosine schedule).
    pub beta_start: f64,
    /// β_T (ignored by the cosine schedule).
    pub beta_end: f64,
}

impl ScheduleConfig {
    /// "linear, T = 1000, β from 0.0001 to 0.02" (the β range left out for the cosine schedule).
    pub fn describe(&self) -> String {
        match self.kind {
            BetaSchedule::Cosine => format!("{}, T = {}", self.kind, self.num_train_timesteps),
            _ => format!(
                "{}, T = {}, β from {} to {}",
                self.kind, self.num_train_timesteps, self.beta_start, self.beta_end
            ),
        }
    }
}

impl Default for ScheduleConfig {
    /// T = 1000 and β from 0.0001 to 0.02: DDPM's linear schedule (Ho et al. 2020).
    fn default() -> Self {
        Self {
            kind: BetaSchedule::Linear,
            num_train_timesteps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
        }
    }
}

impl ScheduleConfig {
    /// A config with the default β range.
    pub fn new(kind: BetaSchedule, num_train_timesteps: usize) -> Self {
        Self {
            kind,
            num_train_timesteps,
            ..Self::default()
        }
    }

    /// Checks T and the β range, with a message for each problem.
    pub fn validate(&self) -> Result<()> {
        let t = self.num_train_timesteps;
        if t == 0 {
            return Err(DiffError::invalid(
                "the number of timesteps T must be at least 1",
            ));
        }
        if t > MAX_TIMESTEPS {
            return Err(DiffError::invalid(format!(
                "the number of timesteps T = {t} is too large (at most {MAX_TIMESTEPS})"
            )));
        }
        if self.kind == BetaSchedule::Cosine {
            return Ok(());
        }
        for (name, b) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if !b.is_finite() || b <= 0.0 || b >= 1.0 {
                return Err(DiffError::invalid(format!(
                    "{name} = {b} is out of range: β must satisfy 0 < β < 1"
                )));
            }
        }
        if self.beta_start > self.beta_end {
            return Err(DiffError::invalid(format!(
                "beta_start = {} is larger than beta_end = {}: β must not decrease",
                self.beta_start, self.beta_end
            )));
        }
        Ok(())
    }
}

/// T, β and every quantity derived from it, indexed by t = 0 … T−1 (diffusers' convention:
/// index t holds the paper's step t+1).
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    /// What the schedule was made from.
    pub config: ScheduleConfig,
    /// β_t.
    pub betas: Vec<f64>,
    /// α_t = 1 − β_t.
    pub alphas: Vec<f64>,
    /// ᾱ_t = Π_{s ≤ t} α_s.
    pub alphas_cumprod: Vec<f64>,
    /// ᾱ_{t−1}, with ᾱ_{−1} = 1.
    pub alphas_cumprod_prev: Vec<f64>,
    /// √ᾱ_t, the signal coefficient of q(x_t | x_0).
    pub sqrt_alphas_cumprod: Vec<f64>,
    /// √(1 − ᾱ_t), the noise coefficient of q(x_t | x_0).
    pub sqrt_one_minus_alphas_cumprod: Vec<f64>,
    /// β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, the variance of q(x_{t−1} | x_t, x_0) (eq. 7).
    pub posterior_variance: Vec<f64>,
    /// log SNR_t = ln(ᾱ_t / (1 − ᾱ_t)).
    pub log_snr: Vec<f64>,
}

/// numpy / torch `linspace(start, end, n)`: evenly spaced, last value exactly `end`.
pub fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
            v[n - 1] = end;
            v
        }
    }
}

/// Nichol & Dhariwal's ᾱ(t) for continuous t ∈ [0, 1] (eq. 17), s = 0.008.
fn cosine_alpha_bar(t: f64) -> f64 {
    let f = ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos();
    f * f
}

/// β_t for a config, in double precision (not yet validated against 0 < β < 1).
fn betas_f64(config: &ScheduleConfig) -> Vec<f64> {
    let t = config.num_train_timesteps;
    match config.kind {
        BetaSchedule::Linear => linspace(config.beta_start, config.beta_end, t),
        BetaSchedule::ScaledLinear => linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), t)
            .into_iter()
            .map(|b| b * b)
            .collect(),
        // β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), 0.999), with i/T in floating point.
        BetaSchedule::Cosine => (0..t)
            .map(|i| {
                let t1 = i as f64 / t as f64;
                let t2 = (i + 1) as f64 / t as f64;
                (1.0 - cosine_alpha_bar(t2) / cosine_alpha_bar(t1)).min(COSINE_MAX_BETA)
            })
            .collect(),
        BetaSchedule::Sigmoid => linspace(-6.0, 6.0, t)
            .into_iter()
            .map(|x| {
                let x = f64::from(x as f32);
                let s = 1.0 / (1.0 + (-x).exp());
                s * (config.beta_end - config.beta_start) + config.beta_start
            })
            .collect(),
    }
}

/// Rounds to the nearest f32, as diffusers stores its tensors.
fn f32_round(x: f64) -> f64 {
    f64::from(x as f32)
}

impl NoiseSchedule {
    /// Builds and validates a schedule.
    pub fn new(config: ScheduleConfig) -> Result<Self> {
        config.validate()?;
        let betas: Vec<f64> = betas_f64(&config).into_iter().map(f32_round).collect();
        if let Some((i, b)) = betas
            .iter()
            .enumerate()
            .find(|(_, b)| !(**b > 0.0 && **b < 1.0))
        {
            return Err(DiffError::invalid(format!(
                "β at t = {i} is {b}: every β must satisfy 0 < β < 1"
            )));
        }
        // α_t = 1 − β_t (in f32, like torch).
        let alphas: Vec<f64> = betas
            .iter()
            .map(|b| f64::from(1.0f32 - *b as f32))
            .collect();
        // ᾱ_t = Π_{s ≤ t} α_s.
        let mut acc = 1.0f64;
        let alphas_cumprod: Vec<f64> = alphas
            .iter()
            .map(|a| {
                acc *= a;
                f32_round(acc)
            })
            .collect();
        let alphas_cumprod_prev: Vec<f64> = std::iter::once(1.0)
            .chain(alphas_cumprod.iter().copied())
            .take(alphas_cumprod.len())
            .collect();
        let sqrt_alphas_cumprod = alphas_cumprod.iter().map(|a| a.sqrt()).collect();
        let sqrt_one_minus_alphas_cumprod =
            alphas_cumprod.iter().map(|a| (1.0 - a).sqrt()).collect();
        // β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t  (Ho et al. eq. 7).
        let posterior_variance = betas
            .iter()
            .zip(&alphas_cumprod)
            .zip(&alphas_cumprod_prev)
            .map(|((b, a), ap)| (1.0 - ap) / (1.0 - a) * b)
            .collect();
        let log_snr = alphas_cumprod
            .iter()
            .map(|a| (a / (1.0 - a)).ln())
            .collect();
        Ok(Self {
            config,
            betas,
            alphas,
            alphas_cumprod,
            alphas_cumprod_prev,
            sqrt_alphas_cumprod,
            sqrt_one_minus_alphas_cumprod,
            posterior_variance,
            log_snr,
        })
    }

    /// T.
    pub fn num_timesteps(&self) -> usize {
        self.betas.len()
    }

    /// Checks that t indexes this schedule.
    pub fn check_t(&self, t: usize) -> Result<()> {
        if t >= self.num_timesteps() {
            Err(DiffError::invalid(format!(
                "timestep {t} is out of range: this schedule has T = {} (t = 0 … {})",
                self.num_timesteps(),
                self.num_timesteps() - 1
            )))
        } else {
            Ok(())
        }
    }

    /// SNR_t = ᾱ_t / (1 − ᾱ_t).
    pub fn snr(&self, t: usize) -> f64 {
        self.log_snr[t].exp()
    }

    /// ᾱ at the last timestep; far from 0 means the terminal SNR is too high and x_T still
    /// carries signal.
    pub fn terminal_alpha_cumprod(&self) -> f64 {
        self.alphas_cumprod[self.num_timesteps() - 1]
    }
    /// The curves as JSON (what `difflab schedule` prints).
    pub fn to_json(&self) -> Result<String> {
        let s = self;
        let j = ScheduleJson {
            schedule: s.config.kind.name(),
            num_train_timesteps: s.num_timesteps(),
            beta_start: s.config.beta_start,
            beta_end: s.config.beta_end,
            betas: &s.betas,
            alphas_cumprod: &s.alphas_cumprod,
            sqrt_alphas_cumprod: &s.sqrt_alphas_cumprod,
            sqrt_one_minus_alphas_cumprod: &s.sqrt_one_minus_alphas_cumprod,
            posterior_variance: &s.posterior_variance,
            log_snr: &s.log_snr,
        };
        serde_json::to_string_pretty(&j).map_err(|e| DiffError::invalid(e.to_string()))
    }

    /// The curves as CSV, one row per timestep (`difflab schedule --format csv`, the app's export).
    pub fn to_csv(&self) -> String {
        let s = self;
        let mut out = String::from(
            "t,beta,alpha_cumprod,sqrt_alpha_cumprod,sqrt_one_minus_alpha_cumprod,posterior_variance,log_snr\n",
        );
        for t in 0..s.num_timesteps() {
            out.push_str(&format!(
                "{t},{},{},{},{},{},{}\n",
                // β and ᾱ are f32 values (as in diffusers): print them as such.
                s.betas[t] as f32,
                s.alphas_cumprod[t] as f32,
                s.sqrt_alphas_cumprod[t],
                s.sqrt_one_minus_alphas_cumprod[t],
                s.posterior_variance[t],
                s.log_snr[t]
            ));
        }
        out
    }
}

#[derive(Serialize)]
struct ScheduleJson<'a> {
    schedule: &'static str,
    num_train_timesteps: usize,
    beta_start: f64,
    beta_end: f64,
    betas: &'a [f64],
    alphas_cumprod: &'a [f64],
    sqrt_alphas_cumprod: &'a [f64],
    sqrt_one_minus_alphas_cumprod: &'a [f64],
    posterior_variance: &'a [f64],
    log_snr: &'a [f64],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_endpoints_and_monotone_cumprod() {
        let s = NoiseSchedule::new(ScheduleConfig::default()).unwrap();
        assert_eq!(s.num_timesteps(), 1000);
        assert!((s.betas[0] - 1e-4).abs() < 1e-9);
        assert!((s.betas[999] - 0.02).abs() < 1e-9);
        assert!(s.alphas_cumprod.windows(2).all(|w| w[1] < w[0]));
        assert_eq!(s.posterior_variance[0], 0.0);
    }

    #[test]
    fn validation_messages() {
        let mut c = ScheduleConfig {
            beta_end: 1.0,
            ..ScheduleConfig::default()
        };
        assert!(
            NoiseSchedule::new(c)
                .unwrap_err()
                .to_string()
                .contains("0 < β < 1")
        );
        c.beta_end = 0.00001;
        assert!(
            NoiseSchedule::new(c)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
        c = ScheduleConfig::new(BetaSchedule::Linear, 0);
        assert!(
            NoiseSchedule::new(c)
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
    }
}
