//! The comparisons the compare panel runs, and their fixed settings.

use serde::{Deserialize, Serialize};

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
