//! The comparisons the compare panel runs, and their fixed settings.

use serde::{Deserialize, Serialize};

use super::sampler::{GuidanceSettings, LabelPick, RunSpec, SamplerChoice, SamplerSettings};
use crate::app::settings::Settings;

/// Step counts of the "steps vs quality" grid.
pub const GRID_STEPS: [usize; 6] = [5, 10, 20, 50, 100, 1000];
/// η values of the sweep.
pub const SWEEP_ETAS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
/// Guidance scales of the guidance sweep.
pub const GUIDANCE_SWEEP: [f32; 5] = [0.0, 1.0, 2.0, 4.0, 8.0];

/// What a comparison was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareKind {
    /// A against B, every frame kept.
    Pair,
    /// DDPM and DDIM at each of [`GRID_STEPS`].
    Grid,
    /// DDIM at each of [`SWEEP_ETAS`], plus η = 0 again.
    Sweep,
    /// The sampling panel's sampler at each guidance scale of [`GUIDANCE_SWEEP`].
    Guidance,
}

impl CompareKind {
    /// The compare panel's button that runs it.
    pub fn button(self) -> &'static str {
        match self {
            Self::Pair => "Run A and B",
            Self::Grid => "Steps vs quality grid",
            Self::Sweep => "η sweep",
            Self::Guidance => "Guidance sweep",
        }
    }

    /// Cells per row of the grid view.
    pub fn columns(self) -> usize {
        match self {
            CompareKind::Pair | CompareKind::Grid => 2,
            CompareKind::Sweep => 6,
            CompareKind::Guidance => GUIDANCE_SWEEP.len(),
        }
    }
}

/// The runs of a comparison of `kind`: each with the Sampling panel's seed, batch and digit, and
/// its model (a Pair side's own, when it has one).
pub fn compare_runs(kind: CompareKind, settings: &Settings, id: u64) -> Vec<RunSpec> {
    let t_max = settings.schedule.num_train_timesteps;
    let spec = |sampler: SamplerSettings| RunSpec {
        id,
        schedule: settings.schedule,
        sampler,
        model: settings.sampling.model,
        seed: settings.sampling.seed,
        batch: settings.sampling.batch,
        guidance: settings.sampling.guidance,
    };
    match kind {
        CompareKind::Pair => settings
            .compare
            .iter()
            .zip(settings.compare_models)
            .map(|(s, m)| {
                let model = m.unwrap_or(settings.sampling.model);
                RunSpec {
                    model,
                    sampler: SamplerSettings {
                        sampler: model.sampler_for(s.sampler),
                        ..*s
                    },
                    ..spec(*s)
                }
            })
            .collect(),
        CompareKind::Grid => GRID_STEPS
            .iter()
            .filter(|&&n| n <= t_max)
            .flat_map(|&steps| {
                [SamplerChoice::DdpmFixedSmall, SamplerChoice::Ddim].map(|sampler| {
                    spec(SamplerSettings {
                        sampler,
                        steps,
                        eta: 0.0,
                        spacing: settings.sampling.sampler.spacing,
                        ..SamplerSettings::default()
                    })
                })
            })
            .collect(),
        CompareKind::Sweep => SWEEP_ETAS
            .iter()
            .chain(std::iter::once(&0.0))
            .map(|&eta| {
                spec(SamplerSettings {
                    sampler: SamplerChoice::Ddim,
                    eta,
                    ..settings.sampling.sampler
                })
            })
            .collect(),
        CompareKind::Guidance => GUIDANCE_SWEEP
            .iter()
            .map(|&scale| RunSpec {
                guidance: GuidanceSettings {
                    scale,
                    label: match settings.sampling.guidance.label {
                        LabelPick::Any => LabelPick::PerRow,
                        l => l,
                    },
                },
                ..spec(settings.sampling.sampler)
            })
            .collect(),
    }
}
