//! The settings a sampling run is made of, as the panels offer them and session files keep
//! them: the sampler, the model, and the digit with its guidance scale.

use serde::{Deserialize, Serialize};

use crate::app::unet_file::{SHIPPED, WeightsId};
use crate::data::image_io::grid_cols;
use crate::diffusion::solvers::{SolverKind, SolverSpec};
use crate::diffusion::{
    PredictionType, SamplerKind, ScheduleConfig, SchedulerConfig, TimestepSpacing, VarianceType,
};

/// Which sampler, as the panels offer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SamplerChoice {
    /// DDPM with σ² = β̃_t.
    DdpmFixedSmall,
    /// DDPM with σ² = β_t.
    DdpmFixedLarge,
    /// DDIM with η.
    Ddim,
    /// A solver after DDIM (DPM-Solver++, Euler, Heun, UniPC, …).
    Solver(SolverKind),
}

impl SamplerChoice {
    /// Every choice, in display order.
    pub const ALL: [SamplerChoice; 11] = [
        Self::DdpmFixedSmall,
        Self::DdpmFixedLarge,
        Self::Ddim,
        Self::Solver(SolverKind::DpmSolverPlusPlus),
        Self::Solver(SolverKind::DpmSolver),
        Self::Solver(SolverKind::SdeDpmSolverPlusPlus),
        Self::Solver(SolverKind::UniPc),
        Self::Solver(SolverKind::Euler),
        Self::Solver(SolverKind::EulerAncestral),
        Self::Solver(SolverKind::Heun),
        Self::Solver(SolverKind::FlowEuler),
    ];

    /// The label shown.
    pub fn label(self) -> &'static str {
        match self {
            Self::DdpmFixedSmall => "DDPM (fixed_small)",
            Self::DdpmFixedLarge => "DDPM (fixed_large)",
            Self::Ddim => "DDIM",
            Self::Solver(SolverKind::DpmSolverPlusPlus) => "DPM-Solver++",
            Self::Solver(SolverKind::DpmSolver) => "DPM-Solver",
            Self::Solver(SolverKind::SdeDpmSolverPlusPlus) => "DPM-Solver++ SDE",
            Self::Solver(SolverKind::UniPc) => "UniPC",
            Self::Solver(SolverKind::Euler) => "Euler",
            Self::Solver(SolverKind::EulerAncestral) => "Euler a",
            Self::Solver(SolverKind::Heun) => "Heun",
            Self::Solver(SolverKind::FlowEuler) => "Flow Euler (flow models)",
        }
    }
}

fn default_order() -> usize {
    2
}

/// One sampler configuration (persisted, saved in session files).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerSettings {
    /// DDPM or DDIM.
    pub sampler: SamplerChoice,
    /// N.
    pub steps: usize,
    /// DDIM's η.
    pub eta: f64,
    /// How the N steps spread over T.
    pub spacing: TimestepSpacing,
    /// A multistep solver's order (1 to 3).
    #[serde(default = "default_order")]
    pub order: usize,
    /// Karras σ for a solver after DDIM.
    #[serde(default)]
    pub karras: bool,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            sampler: SamplerChoice::Ddim,
            steps: 50,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            order: default_order(),
            karras: false,
        }
    }
}

impl SamplerSettings {
    /// The core scheduler config for a model that predicts `prediction`.
    pub fn scheduler_config(
        &self,
        schedule: ScheduleConfig,
        prediction: PredictionType,
    ) -> SchedulerConfig {
        SchedulerConfig {
            use_clipped_model_output: false,
            schedule,
            prediction_type: prediction,
            clip_sample: Some(1.0),
            spacing: self.spacing,
            steps_offset: 0,
            num_inference_steps: self.steps,
            sampler: match self.sampler {
                SamplerChoice::DdpmFixedSmall => SamplerKind::Ddpm {
                    variance: VarianceType::FixedSmall,
                },
                SamplerChoice::DdpmFixedLarge => SamplerKind::Ddpm {
                    variance: VarianceType::FixedLarge,
                },
                // A solver after DDIM runs through `solver_spec`; DDIM stands in here.
                SamplerChoice::Ddim | SamplerChoice::Solver(_) => SamplerKind::Ddim {
                    eta: self.eta,
                    set_alpha_to_one: true,
                },
            },
        }
    }

    /// The solver after DDIM these settings name, if any.
    pub fn solver_spec(&self) -> Option<SolverSpec> {
        match self.sampler {
            SamplerChoice::Solver(kind) => Some(SolverSpec {
                kind,
                order: kind.default_order().map(|_| self.order.clamp(1, 3)),
                karras: self.karras,
            }),
            _ => None,
        }
    }

    /// Model evaluations a run makes (the steps, but Heun's 2N − 1).
    pub fn nfe(&self) -> usize {
        match self.sampler {
            SamplerChoice::Solver(SolverKind::Heun) => (2 * self.steps).saturating_sub(1),
            _ => self.steps,
        }
    }

    /// A short description, e.g. "DDIM 50 steps η=0", "DPM-Solver++ 2M Karras 10 steps".
    pub fn describe(&self) -> String {
        match (self.sampler, self.solver_spec()) {
            (_, Some(spec)) => {
                format!("{} {} steps ({} NFE)", spec.label(), self.steps, self.nfe())
            }
            (SamplerChoice::Ddim, _) => format!("DDIM {} steps η={}", self.steps, self.eta),
            (s, _) => format!("{} {} steps", s.label(), self.steps),
        }
    }
}

/// The model: a trained MNIST U-Net (the shipped one or a file the student opened), or the
/// exact denoiser over the first `count` digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSpec {
    /// Digits in the exact denoiser's set.
    pub count: usize,
    /// The trained U-Net instead of the exact denoiser.
    pub unet: bool,
    /// Which U-Net weights (the shipped ones unless a file was opened).
    pub weights: WeightsId,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            count: 1000,
            unet: true,
            weights: SHIPPED,
        }
    }
}

impl ModelSpec {
    /// The exact denoiser over the first `count` digits.
    pub fn exact(count: usize) -> Self {
        Self {
            count,
            unet: false,
            weights: SHIPPED,
        }
    }

    /// The menu's name for it.
    pub fn label(&self) -> String {
        if !self.unet {
            format!("Exact denoiser, {} digits", self.count)
        } else if self.weights == SHIPPED {
            "MNIST U-Net (trained)".into()
        } else if self.weights == crate::app::unet_file::SHIPPED_FLOW {
            "MNIST flow-matching U-Net".into()
        } else {
            match crate::app::unet_file::get(self.weights) {
                Ok(f) => format!("U-Net: {}", f.name),
                Err(_) => "U-Net (file not open)".into(),
            }
        }
    }

    /// The U-Net's weights file (the shipped one unless another was opened).
    pub fn unet_file(&self) -> crate::Result<std::sync::Arc<crate::app::unet_file::UNetFile>> {
        crate::app::unet_file::get(self.weights)
    }

    /// Whether it is a flow-matching model (sampled by flow matching's Euler only).
    pub fn is_flow(&self) -> bool {
        self.unet
            && self
                .unet_file()
                .is_ok_and(|f| f.config.prediction == crate::diffusion::PredictionType::Flow)
    }

    /// The sampler this model can run: flow matching's Euler for a flow-matching model, DDIM in
    /// its place for any other; `asked` where it fits.
    pub fn sampler_for(&self, asked: SamplerChoice) -> SamplerChoice {
        let flow_sampler = SamplerChoice::Solver(SolverKind::FlowEuler);
        match (self.is_flow(), asked == flow_sampler) {
            (true, false) => flow_sampler,
            (false, true) => SamplerChoice::Ddim,
            _ => asked,
        }
    }

    /// Whether the digit picker applies: the U-Net, conditioned on the ten digits.
    pub fn takes_digits(&self) -> bool {
        self.unet && self.unet_file().is_ok_and(|f| f.takes_digits())
    }
}

/// Which digit a class-conditional model is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelPick {
    /// No label (∅): the unconditional model.
    Any,
    /// This digit for every sample.
    Digit(u8),
    /// One row per digit, 0 to 9.
    PerRow,
}

impl LabelPick {
    /// The menu's name for it.
    pub fn label(self) -> String {
        match self {
            LabelPick::Any => "any digit (no label)".into(),
            LabelPick::Digit(d) => format!("digit {d}"),
            LabelPick::PerRow => "one row per digit".into(),
        }
    }
}

/// Classifier-free guidance of a run: the label and w.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuidanceSettings {
    /// The label.
    pub label: LabelPick,
    /// w ≥ 0: ε̃ = ε_∅ + w·(ε_c − ε_∅).
    pub scale: f32,
}

impl Default for GuidanceSettings {
    fn default() -> Self {
        Self {
            label: LabelPick::Any,
            scale: 2.0,
        }
    }
}

/// The largest guidance scale the app offers.
pub const MAX_GUIDANCE: f32 = 10.0;

impl GuidanceSettings {
    /// The batch actually sampled for `batch` requested and the grid's columns: one row per
    /// digit makes 10 rows of ⌈batch/10⌉ (at most 6, so at most 60 images).
    pub fn layout(&self, batch: usize) -> (usize, usize) {
        match self.label {
            LabelPick::PerRow => {
                let per_row = batch.div_ceil(10).clamp(1, 6);
                (10 * per_row, per_row)
            }
            _ => (batch, grid_cols(batch)),
        }
    }

    /// The labels of a batch of `n` (`None` for ∅).
    pub fn labels(&self, n: usize) -> Option<Vec<usize>> {
        match self.label {
            LabelPick::Any => None,
            LabelPick::Digit(d) => Some(vec![usize::from(d); n]),
            LabelPick::PerRow => {
                let (_, per_row) = self.layout(n);
                Some((0..n).map(|i| (i / per_row).min(9)).collect())
            }
        }
    }

    /// "w = 2, digit 3" (empty without a label).
    pub fn describe(&self) -> String {
        match self.label {
            LabelPick::Any => String::new(),
            l => format!("w = {}, {}", self.scale, l.label()),
        }
    }
}
