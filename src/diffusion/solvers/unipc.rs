//! UniPC (Zhao et al. 2023, "UniPC: a unified predictor-corrector framework for fast sampling
//! of diffusion models"), multistep, orders 1–3, B(h) = h (bh1) or e^h − 1 (bh2): diffusers'
//! `UniPCMultistepScheduler`, step for step.
//!
//! **Notation** as in [`super::dpm`]: σ per step, α_t = 1/√(σ²+1), σ_t = σ·α_t,
//! λ = log α_t − log σ_t, m0, m1, … the converted model outputs (x̂0 when `predict_x0`, else
//! ε̂) at s0, s1, …, and r_i = (λ_si − λ_s0)/h.
//!
//! A call does two things, in this order (diffusers' `step`):
//! 1. **UniC, the corrector.** The model output at x_{t_k} (the predictor's result of the
//!    previous call) corrects that result: the previous step is redone with the new output
//!    as an extra point, x_{t_k}^c = x̃_{t_k} − α_t·B(h)·(Σ ρ^c_i·D_i + ρ^c_p·(m_t − m0)).
//!    It is skipped on call 0 and after the calls listed in `disable_corrector`.
//! 2. **UniP, the predictor.** From the corrected sample, one multistep step of order p:
//!    x̃_t = (σ_t/σ_s0)·x − α_t·(e^{−h}−1)·m0 − α_t·B(h)·Σ ρ^p_i·D_i, D_i = (m_i − m0)/r_i.
//!
//! The corrector reuses the model evaluation the predictor needs anyway, so the order of
//! accuracy rises by one at no extra cost. The order warms up 1, 2, … and, with
//! `lower_order_final`, drops to the number of steps left at the end (whatever N).
//!
//! The coefficients are computed in f64 from diffusers' f32 σ and applied as f32 scalars.

use burn::tensor::Tensor;
use serde_json::Value;

use super::dpm::{
    FinalSigma, Vp, check_call, check_distinct, check_first_timestep, check_shapes, check_steps,
    f32_round, f32_training_sigmas, karras_grid, opt_bool, opt_f64, opt_str, opt_usize,
    require_default, require_defaults, schedule_from, sigmas_at, spaced_timesteps, spacing_from,
};
use super::{Solver, SolverStep, check_known_keys, prediction_of};
use crate::diffusion::{NoiseSchedule, PredictionType, TimestepSpacing};
use crate::error::{DiffError, Result};

const SCHEDULER: &str = "unipc_multistep";

/// UniPC's B(h) (diffusers' `solver_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UniPcVariant {
    /// B(h) = h (UniPC's bh1; the paper recommends it for unconditional sampling).
    Bh1,
    /// B(h) = e^h − 1 (bh2, the default; for guided sampling).
    Bh2,
}

impl UniPcVariant {
    /// diffusers' name.
    pub fn name(self) -> &'static str {
        match self {
            UniPcVariant::Bh1 => "bh1",
            UniPcVariant::Bh2 => "bh2",
        }
    }
}

/// Every option of UniPC that difflab implements, with diffusers' defaults from
/// [`UniPcOptions::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct UniPcOptions {
    /// The order p of UniP, 1–3 (`solver_order`); UniC then has order p + 1.
    pub order: usize,
    /// B(h) = h or e^h − 1 (`solver_type`).
    pub variant: UniPcVariant,
    /// What the model predicts.
    pub prediction: PredictionType,
    /// Integrate the data prediction x̂0 (default) rather than ε̂ (`predict_x0`).
    pub predict_x0: bool,
    /// Lower the order to the number of steps left at the end (`lower_order_final`).
    pub lower_order_final: bool,
    /// Calls after which the corrector is skipped (`disable_corrector`: call k's index here
    /// skips the correction at call k + 1).
    pub disable_corrector: Vec<usize>,
    /// Karras σ, ρ = 7 (`use_karras_sigmas`).
    pub karras: bool,
    /// Karras σ_min and σ_max (`sigma_min`, `sigma_max`; the training σ range when `None`).
    pub karras_range: (Option<f64>, Option<f64>),
    /// The σ the last step goes to (`final_sigmas_type`).
    pub final_sigma: FinalSigma,
    /// How N steps are spread over the training timesteps (`timestep_spacing`).
    pub spacing: TimestepSpacing,
    /// Added to leading timesteps (`steps_offset`).
    pub steps_offset: usize,
}

impl UniPcOptions {
    /// diffusers' defaults: bh2, x̂0, lower order at the end, corrector on, linspace
    /// timesteps, final σ = 0.
    pub fn new(order: usize, prediction: PredictionType) -> Self {
        Self {
            order,
            variant: UniPcVariant::Bh2,
            prediction,
            predict_x0: true,
            lower_order_final: true,
            disable_corrector: Vec::new(),
            karras: false,
            karras_range: (None, None),
            final_sigma: FinalSigma::Zero,
            spacing: TimestepSpacing::Linspace,
            steps_offset: 0,
        }
    }
}

/// What UniP and UniC share for one step from s0 to t of order p: the ratios r_i (with
/// r_p = 1 last), h·φ_1 = e^{ĥ} − 1, B(h) and b_i = ĥφ_{i+1}(ĥ)·i!/B(h), i = 1 … p, where
/// ĥ = −h for x̂0 and h for ε̂ (diffusers' `hh`), and φ_{k+1} = (φ_k − 1/k!)/ĥ.
#[derive(Clone, Debug, PartialEq)]
struct BhSystem {
    rks: Vec<f64>,
    h_phi_1: f64,
    b_h: f64,
    b: Vec<f64>,
}

/// The B(h) system for a step s0 → t with the earlier points `earlier` = [s1, s2, …]
/// (p − 1 of them).
fn bh_system(variant: UniPcVariant, predict_x0: bool, t: Vp, s0: Vp, earlier: &[Vp]) -> BhSystem {
    let h = t.lambda - s0.lambda;
    let order = earlier.len() + 1;
    let mut rks: Vec<f64> = earlier
        .iter()
        .map(|si| (si.lambda - s0.lambda) / h)
        .collect();
    rks.push(1.0);
    let hh = if predict_x0 { -h } else { h };
    let h_phi_1 = hh.exp_m1();
    let b_h = match variant {
        UniPcVariant::Bh1 => hh,
        UniPcVariant::Bh2 => hh.exp_m1(),
    };
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial = 1.0;
    let mut b = Vec::with_capacity(order);
    for i in 1..=order {
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    BhSystem {
        rks,
        h_phi_1,
        b_h,
        b,
    }
}

/// Solves R·ρ = b for the first `n` rows and columns of R_ij = r_j^i (the order conditions
/// Σ_j ρ_j·r_j^i = b_i, i = 0 … n−1), by Gaussian elimination with partial pivoting.
fn solve_rhos(rks: &[f64], b: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut a: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut row: Vec<f64> = rks[..n].iter().map(|r| r.powi(i as i32)).collect();
            row.push(b[i]);
            row
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        if a[pivot][col].abs() < 1e-300 || !a[pivot][col].is_finite() {
            return Err(DiffError::invalid(format!(
                "{SCHEDULER}: UniPC's order conditions are singular (r = {rks:?})"
            )));
        }
        a.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for row in lower {
            let f = row[col] / pivot_row[col];
            for (r, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *r -= f * p;
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[i][j] * x[j]).sum();
        x[i] = (a[i][n] - s) / a[i][i];
    }
    Ok(x)
}

/// UniP's weights ρ^p: none for p = 1, ½ for p = 2 (diffusers' simplification), else the
/// first p − 1 order conditions.
fn predictor_rhos(sys: &BhSystem) -> Result<Vec<f64>> {
    match sys.b.len() {
        1 => Ok(Vec::new()),
        2 => Ok(vec![0.5]),
        p => solve_rhos(&sys.rks, &sys.b, p - 1),
    }
}

/// UniC's weights ρ^c: ½ for p = 1, else all p order conditions (the last weight is the new
/// model output's).
fn corrector_rhos(sys: &BhSystem) -> Result<Vec<f64>> {
    match sys.b.len() {
        1 => Ok(vec![0.5]),
        p => solve_rhos(&sys.rks, &sys.b, p),
    }
}

/// UniPC multistep with its timesteps set, and what it carries between calls: the last
/// converted model outputs, the previous call's sample before its predictor step (for the
/// corrector) and that step's order.
pub struct UniPc {
    options: UniPcOptions,
    timesteps: Vec<f64>,
    /// σ of every step plus the final one (f32 values, as diffusers stores them).
    sigmas: Vec<f64>,
    /// The converted outputs of the last `order` calls, oldest first.
    model_outputs: Vec<Tensor<4>>,
    /// How many calls the history has seen, up to the order (`lower_order_nums`).
    lower_order_nums: usize,
    /// The sample the previous predictor step started from (`last_sample`).
    last_sample: Option<Tensor<4>>,
    /// The previous predictor step's order (`this_order`), the corrector's p.
    this_order: usize,
    /// The next call's index (`step_index`).
    step_index: usize,
}

impl UniPc {
    /// diffusers' defaults (bh2, x̂0, lower order at the end, final σ = 0) with `order` on
    /// `schedule`, N steps.
    pub fn new(
        schedule: &NoiseSchedule,
        prediction: PredictionType,
        n: usize,
        order: usize,
        karras: bool,
    ) -> Result<Self> {
        let mut options = UniPcOptions::new(order, prediction);
        options.karras = karras;
        Self::with_options(schedule, options, n)
    }

    /// Every option spelled out; diffusers' `__init__` checks and `set_timesteps(n)`.
    pub fn with_options(schedule: &NoiseSchedule, options: UniPcOptions, n: usize) -> Result<Self> {
        if !(1..=3).contains(&options.order) {
            return Err(DiffError::invalid(format!(
                "{SCHEDULER}: solver_order must be 1, 2 or 3, not {}",
                options.order
            )));
        }
        if options.final_sigma == FinalSigma::Zero {
            // diffusers divides by 0 or multiplies 0 by ∞ in these (NaN or ∞ samples).
            if !options.predict_x0 {
                return Err(DiffError::invalid(format!(
                    "{SCHEDULER}: predict_x0 = false cannot end at σ = 0 (σ_t·(e^h − 1) = 0·∞); \
                     use final_sigmas_type sigma_min"
                )));
            }
            if !options.lower_order_final && options.order > 1 {
                return Err(DiffError::invalid(format!(
                    "{SCHEDULER}: lower_order_final = false with order > 1 cannot end at σ = 0 \
                     (r = 0 in the last step); use final_sigmas_type sigma_min"
                )));
            }
        }
        if !options.karras && options.karras_range != (None, None) {
            return Err(DiffError::invalid(format!(
                "{SCHEDULER}: sigma_min and sigma_max only apply to Karras σ (use_karras_sigmas)"
            )));
        }
        let t_train = schedule.num_timesteps();
        check_steps(SCHEDULER, n, t_train)?;
        let (train_sigmas, log_sigmas) = f32_training_sigmas(schedule);
        let (timesteps, mut sigmas) = if options.karras {
            let (lo, hi) = options.karras_range;
            let lo = lo.unwrap_or(train_sigmas[0]);
            let hi = hi.unwrap_or(train_sigmas[t_train - 1]);
            if !(lo > 0.0 && hi > lo && hi.is_finite()) {
                return Err(DiffError::invalid(format!(
                    "{SCHEDULER}: Karras σ needs 0 < sigma_min < sigma_max, not {lo} and {hi}"
                )));
            }
            karras_grid(lo, hi, n, &log_sigmas, true)
        } else {
            let ts = spaced_timesteps(options.spacing, t_train, t_train, n, options.steps_offset)?;
            let s = sigmas_at(&ts, &train_sigmas);
            (ts, s)
        };
        check_distinct(SCHEDULER, &sigmas)?;
        check_first_timestep(SCHEDULER, &timesteps)?;
        // σ_min is the Karras grid's last σ there, the training σ_0 otherwise.
        let sigma_min = if options.karras {
            sigmas[n - 1]
        } else {
            train_sigmas[0]
        };
        sigmas.push(match options.final_sigma {
            FinalSigma::Zero => 0.0,
            FinalSigma::SigmaMin => sigma_min,
        });
        let sigmas = sigmas.into_iter().map(f32_round).collect();
        Ok(Self {
            options,
            timesteps,
            sigmas,
            model_outputs: Vec::new(),
            lower_order_nums: 0,
            last_sample: None,
            this_order: 0,
            step_index: 0,
        })
    }

    /// From `UniPCMultistepScheduler`'s constructor arguments (absent ones take diffusers'
    /// defaults) and `set_timesteps(num_inference_steps)`. An option difflab does not
    /// implement is an error.
    pub fn from_diffusers(config: &Value, num_inference_steps: usize) -> Result<Self> {
        check_known_keys(
            SCHEDULER,
            config,
            &[
                "num_train_timesteps",
                "beta_start",
                "beta_end",
                "beta_schedule",
                "trained_betas",
                "solver_order",
                "prediction_type",
                "thresholding",
                "dynamic_thresholding_ratio",
                "sample_max_value",
                "predict_x0",
                "solver_type",
                "lower_order_final",
                "disable_corrector",
                "solver_p",
                "use_karras_sigmas",
                "use_exponential_sigmas",
                "use_beta_sigmas",
                "use_flow_sigmas",
                "flow_shift",
                "timestep_spacing",
                "steps_offset",
                "final_sigmas_type",
                "rescale_betas_zero_snr",
                "use_dynamic_shifting",
                "time_shift_type",
                "sigma_min",
                "sigma_max",
                "shift_terminal",
            ],
        )?;
        let c = SCHEDULER;
        require_defaults(c, config)?;
        require_default(c, config, "solver_p", &Value::Null)?;
        require_default(c, config, "shift_terminal", &Value::Null)?;
        let schedule = schedule_from(c, config)?;
        // diffusers maps DPM-Solver's solver types to bh2 (so their configs can be reused).
        let variant = match opt_str(c, config, "solver_type", "bh2")? {
            "bh1" => UniPcVariant::Bh1,
            "bh2" | "midpoint" | "heun" | "logrho" => UniPcVariant::Bh2,
            other => {
                return Err(DiffError::invalid(format!(
                    "{c}: solver_type '{other}' is not bh1 or bh2"
                )));
            }
        };
        let disable_corrector = match config.get("disable_corrector") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64().map(|k| k as usize).ok_or_else(|| {
                        DiffError::invalid(format!(
                            "{c}: disable_corrector must list call indices, not {v}"
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            Some(v) => {
                return Err(DiffError::invalid(format!(
                    "{c}: disable_corrector must be a list of call indices, not {v}"
                )));
            }
        };
        let (spacing, steps_offset) = spacing_from(c, config)?;
        let options = UniPcOptions {
            order: opt_usize(c, config, "solver_order", 2)?,
            variant,
            prediction: prediction_of(config)?,
            predict_x0: opt_bool(c, config, "predict_x0", true)?,
            lower_order_final: opt_bool(c, config, "lower_order_final", true)?,
            disable_corrector,
            karras: opt_bool(c, config, "use_karras_sigmas", false)?,
            karras_range: (
                opt_f64(c, config, "sigma_min")?,
                opt_f64(c, config, "sigma_max")?,
            ),
            final_sigma: FinalSigma::parse(opt_str(c, config, "final_sigmas_type", "zero")?)?,
            spacing,
            steps_offset,
        };
        Self::with_options(&schedule, options, num_inference_steps)
    }

    /// The options.
    pub fn options(&self) -> &UniPcOptions {
        &self.options
    }

    /// `convert_model_output` at σ[k]: x̂0 = (x − σ_t·ε̂)/α_t (ε), = out (sample),
    /// = α_t·x − σ_t·v̂ (v) when `predict_x0`; else ε̂ = out (ε), = (x − α_t·x̂0)/σ_t
    /// (sample), = α_t·v̂ + σ_t·x (v).
    fn convert(&self, out: Tensor<4>, x: Tensor<4>, s: Vp) -> Tensor<4> {
        let (a, sg) = (s.alpha, s.sigma);
        if self.options.predict_x0 {
            match self.options.prediction {
                PredictionType::Epsilon => (x - out.mul_scalar(sg as f32)).div_scalar(a as f32),
                // (Flow: never; `prediction_of` refuses it.)
                PredictionType::Sample | PredictionType::Flow => out,
                PredictionType::VPrediction => x.mul_scalar(a as f32) - out.mul_scalar(sg as f32),
            }
        } else {
            match self.options.prediction {
                PredictionType::Epsilon | PredictionType::Flow => out,
                PredictionType::Sample => (x - out.mul_scalar(a as f32)).div_scalar(sg as f32),
                PredictionType::VPrediction => out.mul_scalar(a as f32) + x.mul_scalar(sg as f32),
            }
        }
    }

    /// The exponential-integrator part shared by UniP and UniC, x̃_t = (σ_t/σ_s0)·x −
    /// α_t·(e^{−h}−1)·m0 for x̂0 (= (α_t/α_s0)·x − σ_t·(e^{h}−1)·m0 for ε̂), and the weight
    /// −α_t·B(h) (−σ_t·B(h)) of the higher-order terms.
    fn base(&self, sys: &BhSystem, s0: Vp, t: Vp, x: Tensor<4>, m0: Tensor<4>) -> (Tensor<4>, f64) {
        let (x_coef, outer) = if self.options.predict_x0 {
            (t.sigma / s0.sigma, t.alpha)
        } else {
            (t.alpha / s0.alpha, t.sigma)
        };
        let base = x.mul_scalar(x_coef as f32) - m0.mul_scalar((outer * sys.h_phi_1) as f32);
        (base, -outer * sys.b_h)
    }

    /// Σ_i ρ_i·D_i with D_i = (m_i − m0)/r_i, m0 the last output of `history` and m_i the
    /// i-th before it; `None` when there are no weights.
    fn weighted_differences(
        history: &[Tensor<4>],
        m0: &Tensor<4>,
        rks: &[f64],
        rhos: &[f64],
    ) -> Option<Tensor<4>> {
        rhos.iter()
            .zip(rks)
            .enumerate()
            .map(|(i, (rho, rk))| {
                let mi = history[history.len() - 2 - i].clone();
                (mi - m0.clone()).mul_scalar((rho / rk) as f32)
            })
            .reduce(|a, b| a + b)
    }

    /// UniP-p (`multistep_uni_p_bh_update`), call k from σ[k] to σ[k+1], the history already
    /// holding this call's output last.
    fn predictor(&self, k: usize, order: usize, x: Tensor<4>) -> Result<Tensor<4>> {
        let vp = |i: usize| Vp::from_sigma(self.sigmas[i]);
        let (s0, t) = (vp(k), vp(k + 1));
        if t.lambda == s0.lambda {
            // σ_t = σ_s0 (a Karras grid ending at σ_min): no time passes.
            return Ok(x);
        }
        let earlier: Vec<Vp> = (1..order).map(|i| vp(k - i)).collect();
        let sys = bh_system(
            self.options.variant,
            self.options.predict_x0,
            t,
            s0,
            &earlier,
        );
        let m = &self.model_outputs;
        let m0 = m[m.len() - 1].clone();
        let rhos = predictor_rhos(&sys)?;
        let (base, weight) = self.base(&sys, s0, t, x, m0.clone());
        // With no earlier points the B(h) term is 0 (diffusers multiplies B(h) by 0, which is
        // NaN for bh1 at a final σ of 0, where B(h) = −∞).
        Ok(match Self::weighted_differences(m, &m0, &sys.rks, &rhos) {
            Some(res) => base + res.mul_scalar(weight as f32),
            None => base,
        })
    }

    /// UniC-p (`multistep_uni_c_bh_update`) at call k: redoes the previous step, σ[k−1] →
    /// σ[k], from `last_sample` with the new converted output `model_t` as an extra point,
    /// before the history takes it.
    fn corrector(
        &self,
        k: usize,
        model_t: &Tensor<4>,
        last_sample: Tensor<4>,
    ) -> Result<Tensor<4>> {
        let order = self.this_order;
        let vp = |i: usize| Vp::from_sigma(self.sigmas[i]);
        let (s0, t) = (vp(k - 1), vp(k));
        let earlier: Vec<Vp> = (1..order).map(|i| vp(k - 1 - i)).collect();
        let sys = bh_system(
            self.options.variant,
            self.options.predict_x0,
            t,
            s0,
            &earlier,
        );
        let m = &self.model_outputs;
        let m0 = m[m.len() - 1].clone();
        let rhos = corrector_rhos(&sys)?;
        let (base, weight) = self.base(&sys, s0, t, last_sample, m0.clone());
        let Some((rho_t, rhos)) = rhos.split_last() else {
            return Err(DiffError::invalid(format!(
                "{SCHEDULER}: UniC has no weights"
            )));
        };
        let d1_t = (model_t.clone() - m0.clone()).mul_scalar(*rho_t as f32);
        let res = match Self::weighted_differences(m, &m0, &sys.rks, rhos) {
            Some(r) => r + d1_t,
            None => d1_t,
        };
        Ok(base + res.mul_scalar(weight as f32))
    }
}

impl Solver for UniPc {
    fn name(&self) -> String {
        let o = &self.options;
        let mut name = format!("UniPC {}M ({})", o.order, o.variant.name());
        if o.karras {
            name.push_str(" Karras");
        }
        name
    }

    fn timesteps(&self) -> Vec<f64> {
        self.timesteps.clone()
    }

    fn sigmas(&self) -> Vec<f64> {
        self.sigmas.clone()
    }

    /// diffusers' `step`: corrector (from call 1 on), then the history update, then the
    /// predictor. Call 0 starts a fresh run; later calls must follow in order.
    fn step(
        &mut self,
        model_output: Tensor<4>,
        call: usize,
        sample: Tensor<4>,
        _noise: Option<Tensor<4>>,
    ) -> Result<SolverStep> {
        if call == 0 {
            self.model_outputs.clear();
            self.lower_order_nums = 0;
            self.last_sample = None;
            self.this_order = 0;
            self.step_index = 0;
        }
        let n = self.timesteps.len();
        check_call(SCHEDULER, call, self.step_index, n)?;
        check_shapes(&model_output, &sample, None)?;
        let k = call;
        let s = Vp::from_sigma(self.sigmas[k]);
        let converted = self.convert(model_output, sample.clone(), s);
        let x0 = if self.options.predict_x0 {
            converted.clone()
        } else {
            (sample.clone() - converted.clone().mul_scalar(s.sigma as f32))
                .div_scalar(s.alpha as f32)
        };
        // 1. UniC: correct x_{t_k} with the output just computed at it.
        let sample = match &self.last_sample {
            Some(last) if k > 0 && !self.options.disable_corrector.contains(&(k - 1)) => {
                self.corrector(k, &converted, last.clone())?
            }
            _ => sample,
        };
        // 2. The history takes the new output.
        if self.model_outputs.len() == self.options.order {
            self.model_outputs.remove(0);
        }
        self.model_outputs.push(converted.clone());
        // 3. UniP of order min(p, steps left, warm-up) from the corrected sample.
        let mut order = self.options.order;
        if self.options.lower_order_final {
            order = order.min(n - k);
        }
        self.this_order = order.min(self.lower_order_nums + 1);
        self.last_sample = Some(sample.clone());
        let prev_sample = self.predictor(k, self.this_order, sample)?;
        self.lower_order_nums = (self.lower_order_nums + 1).min(self.options.order);
        self.step_index += 1;
        Ok(SolverStep {
            prev_sample,
            pred_original_sample: Some(x0),
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use serde_json::json;

    use super::*;
    use crate::diffusion::solvers::dpm::tests::{check_golden, check_oracle};
    use crate::tensor_util::{tensor4, to_vec};

    #[test]
    fn matches_diffusers_golden_loops() {
        check_golden(SCHEDULER, 1);
    }

    /// Paths the golden file does not cover, against diffusers' own
    /// `UniPCMultistepScheduler` code (diffusers main of 2026, run with torch 2.15 on the
    /// inputs of `oracle_inputs`): the first 4 values of the final sample.
    #[test]
    fn matches_diffusers_on_other_options() {
        let cases = [
            (
                json!({"solver_order": 1}),
                10,
                [0.219_868_33, 0.446_614_15, 0.019_069_219, -0.436_412_25],
            ),
            (
                json!({"solver_order": 3}),
                10,
                [0.234_400_24, 0.476_132_63, 0.020_329_574, -0.465_256_18],
            ),
            (
                json!({"solver_order": 3}),
                25,
                [0.242_940_77, 0.493_480_68, 0.021_070_302, -0.482_208_22],
            ),
            (
                json!({"solver_type": "bh1", "solver_order": 3, "final_sigmas_type": "sigma_min"}),
                12,
                [0.245_103_02, 0.497_872_8, 0.021_257_836, -0.486_499_94],
            ),
            (
                json!({"predict_x0": false, "final_sigmas_type": "sigma_min"}),
                10,
                [0.234_269_83, 0.475_867_6, 0.020_318_259, -0.464_997_35],
            ),
            (
                json!({"predict_x0": false, "final_sigmas_type": "sigma_min", "solver_order": 3,
                    "solver_type": "bh1", "prediction_type": "v_prediction"}),
                10,
                [0.090_648_025, 0.184_130_67, 0.007_861_826_6, -0.179_925_11],
            ),
            (
                json!({"use_karras_sigmas": true, "solver_order": 3}),
                15,
                [0.236_663_76, 0.480_730_65, 0.020_525_891, -0.469_749_12],
            ),
            (
                json!({"use_karras_sigmas": true, "sigma_min": 0.05, "sigma_max": 80.0}),
                10,
                [0.265_407_17, 0.539_116_44, 0.023_018_803, -0.526_801_23],
            ),
            (
                json!({"prediction_type": "v_prediction"}),
                10,
                [0.095_738_232, 0.194_471_11, 0.008_303_391_7, -0.190_028_85],
            ),
            (
                json!({"disable_corrector": [0, 3]}),
                10,
                [0.233_350_14, 0.473_999_47, 0.020_238_502, -0.463_171_96],
            ),
            (
                json!({"lower_order_final": false, "final_sigmas_type": "sigma_min",
                    "solver_order": 3}),
                10,
                [0.111_357_9, 0.226_198_32, 0.009_658_065_6, -0.221_031_34],
            ),
            (
                json!({"timestep_spacing": "trailing", "prediction_type": "sample"}),
                6,
                [0.859_774_83, 1.746_444_2, 0.074_568_443, -1.706_550_5],
            ),
            (
                json!({"timestep_spacing": "leading", "steps_offset": 1}),
                10,
                [0.235_729_31, 0.478_832_22, 0.020_444_844, -0.467_894_38],
            ),
        ];
        for (config, n, want) in cases {
            check_oracle(SCHEDULER, &config, n, &want);
        }
    }

    /// bh1 ending at σ = 0: diffusers computes α_t·B(h)·0 with B(h) = −∞ in the last
    /// (first-order) predictor step and returns NaN; difflab drops the zero term, so the last
    /// step returns its x̂0.
    #[test]
    fn bh1_ends_at_its_x0_where_diffusers_gives_nan() {
        let device = Device::flex();
        let mut solver = UniPc::from_diffusers(&json!({"solver_type": "bh1"}), 10).expect("solver");
        let mut x = tensor4(
            (0..16).map(|i| (i as f32 * 0.3).sin()).collect(),
            [1, 1, 4, 4],
            &device,
        );
        for (k, t) in solver.call_timesteps().into_iter().enumerate() {
            let out = x.clone().mul_scalar((t / (t + 1.0)) as f32);
            let step = solver.step(out, k, x, None).expect("a step");
            x = step.prev_sample;
            if k == 9 {
                let x0 = to_vec(step.pred_original_sample.expect("x0")).expect("readback");
                assert_eq!(to_vec(x.clone()).expect("readback"), x0);
            }
        }
        assert!(to_vec(x).expect("readback").iter().all(|v| v.is_finite()));
    }

    #[test]
    fn solves_the_order_conditions() {
        let rks = [-0.5, -1.2, 1.0];
        let b = [0.3, -0.1, 0.7];
        let rho = solve_rhos(&rks, &b, 3).expect("regular");
        for (i, bi) in b.iter().enumerate() {
            let lhs: f64 = rks
                .iter()
                .zip(&rho)
                .map(|(r, p)| r.powi(i as i32) * p)
                .sum();
            assert!((lhs - bi).abs() < 1e-12);
        }
        assert!(solve_rhos(&[1.0, 1.0], &[1.0, 2.0], 2).is_err());
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        for config in [
            json!({"solver_order": 4}),
            json!({"solver_type": "midpointx"}),
            json!({"thresholding": true}),
            json!({"solver_p": {}}),
            json!({"use_flow_sigmas": true}),
            json!({"predict_x0": false}),
            json!({"lower_order_final": false}),
            json!({"disable_corrector": [-1]}),
            json!({"sigma_min": 0.1}),
            json!({"shift_terminal": 0.1}),
            json!({"prediction_type": "flow_prediction"}),
            json!({"another": 1}),
        ] {
            assert!(UniPc::from_diffusers(&config, 10).is_err(), "{config}");
        }
        let ok = json!({"predict_x0": false, "final_sigmas_type": "sigma_min",
            "solver_type": "midpoint", "disable_corrector": [], "solver_p": null});
        assert!(UniPc::from_diffusers(&ok, 10).is_ok());
    }

    #[test]
    fn plain_constructor_matches_the_config() {
        let schedule = super::super::sigmas::schedule_of(&json!({})).expect("schedule");
        let a = UniPc::new(&schedule, PredictionType::VPrediction, 12, 3, true).expect("solver");
        let config = json!({"solver_order": 3, "use_karras_sigmas": true,
            "prediction_type": "v_prediction"});
        let b = UniPc::from_diffusers(&config, 12).expect("solver");
        assert_eq!(a.timesteps, b.timesteps);
        assert_eq!(a.sigmas, b.sigmas);
        assert_eq!(a.options, b.options);
        assert_eq!(a.name(), "UniPC 3M (bh2) Karras");
        assert!(UniPc::new(&schedule, PredictionType::Epsilon, 12, 0, false).is_err());
    }
}
