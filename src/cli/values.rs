//! How the core's option enums are spelled on the command line.
//!
//! The core (src/diffusion, src/model, src/data, src/train) knows nothing of clap: the names,
//! aliases and help lines users type and read are given here, one table per enum, and the
//! `cli_values!` macro turns each table into a `clap::ValueEnum` implementation.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::data::toy2d::Toy2d;
use crate::device::DeviceChoice;
use crate::diffusion::interpolation::Blend;
use crate::diffusion::{BetaSchedule, PredictionType, TimestepSpacing, VarianceType};
use crate::train::unet::LossKind;

/// `Type { Variant => "name" [aliases…]: "help", … }` → `impl ValueEnum for Type`.
macro_rules! cli_values {
    ($ty:ident { $($variant:ident => $name:literal $([$($alias:literal),+])? : $help:literal),+ $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($ty::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($ty::$variant => PossibleValue::new($name).help($help)$($(.alias($alias))+)?,)+
                })
            }
        }
    };
}

cli_values!(DeviceChoice {
    Auto => "auto": "wgpu on a real GPU, flex otherwise",
    Wgpu => "wgpu": "wgpu on the best adapter, even a CPU-type one (lavapipe)",
    Cpu => "cpu" ["flex"]: "burn's flex backend on the CPU",
});

cli_values!(BetaSchedule {
    Linear => "linear": "β_t linear from β_start to β_end (Ho et al. 2020)",
    ScaledLinear => "scaled-linear" ["scaled_linear"]:
        "√β_t linear from √β_start to √β_end (Stable Diffusion's default)",
    Cosine => "cosine" ["squaredcos_cap_v2"]:
        "Nichol & Dhariwal's cosine schedule (ᾱ from cos²), β capped at 0.999; ignores β_start and β_end",
    Sigmoid => "sigmoid": "β_t = σ(linspace(−6, 6)) scaled into [β_start, β_end]",
});

cli_values!(TimestepSpacing {
    Leading => "leading": "t_k = k·⌊T/N⌋ + offset: starts at 0, may stop short of T−1 (DDIM paper)",
    Trailing => "trailing": "t_k = round(T − k·T/N) − 1: always starts at T−1",
    Linspace => "linspace": "round(linspace(0, T−1, N)): both ends included",
});

cli_values!(PredictionType {
    Epsilon => "epsilon": "The noise ε (Ho et al. 2020)",
    Sample => "sample": "The clean sample x_0 directly",
    VPrediction => "v-prediction" ["v_prediction", "v"]:
        "v = √ᾱ·ε − √(1−ᾱ)·x_0 (Salimans & Ho 2022)",
    Flow => "flow" ["flow_prediction"]:
        "Flow matching's velocity ε − x_0 on x_σ = (1 − σ)·x_0 + σ·ε",
});

/// What a U-Net may be trained to predict: [`PredictionType`] without `sample`, which
/// `UNetConfig::validate` refuses (so `train --help` does not offer it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UNetPrediction {
    /// ε.
    Epsilon,
    /// v.
    V,
    /// Flow matching's velocity (`train --objective flow`).
    Flow,
}

impl From<UNetPrediction> for PredictionType {
    fn from(p: UNetPrediction) -> Self {
        match p {
            UNetPrediction::Epsilon => Self::Epsilon,
            UNetPrediction::V => Self::VPrediction,
            UNetPrediction::Flow => Self::Flow,
        }
    }
}

cli_values!(UNetPrediction {
    Epsilon => "epsilon": "The noise ε (Ho et al. 2020)",
    V => "v-prediction" ["v_prediction", "v"]: "v = √ᾱ·ε − √(1−ᾱ)·x_0 (Salimans & Ho 2022)",
    Flow => "flow" ["flow_prediction"]:
        "Flow matching: the velocity ε − x_0 on the straight path x_σ = (1 − σ)·x_0 + σ·ε",
});

cli_values!(VarianceType {
    FixedSmall => "fixed-small" ["fixed_small"]:
        "σ_t² = β̃_t, the posterior variance (the lower bound of Ho et al. §3.2)",
    FixedLarge => "fixed-large" ["fixed_large"]: "σ_t² = β_t (the upper bound)",
});

cli_values!(Blend {
    Slerp => "slerp": "Spherical: keeps the norm",
    Lerp => "lerp": "Straight line: the norm dips in the middle",
});

cli_values!(Toy2d {
    SwissRoll => "swiss-roll": "The swiss roll of Sohl-Dickstein et al. 2015 (2-D: a spiral)",
    TwoMoons => "two-moons": "Two interleaved half circles",
    EightGaussians => "eight-gaussians": "Eight Gaussians on a circle",
    Checkerboard => "checkerboard": "A 4×4 checkerboard of uniform squares",
    Circles => "circles": "Two concentric circles",
});

cli_values!(LossKind {
    L2 => "l2": "Mean squared error (DDPM's L_simple)",
    L1 => "l1": "Mean absolute error",
    Huber => "huber": "Huber (smooth L1) with δ = 1: quadratic near zero, linear beyond",
});

/// The name a value is typed as on the command line (`huber`, `v-prediction`).
pub(super) fn cli_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value parses back to itself, and the names agree with the core's serde names
    /// (what session files and the app's state store), so a name means one thing everywhere.
    fn round_trips<T: ValueEnum + PartialEq + std::fmt::Debug + serde::Serialize>() {
        for v in T::value_variants() {
            let name = cli_name(v);
            assert_eq!(&T::from_str(&name, false).expect("parses"), v);
            let json = serde_json::to_string(v).expect("serialises");
            if json.trim_matches('"').to_lowercase() == json.trim_matches('"') {
                assert_eq!(json.trim_matches('"'), name, "{v:?}");
            }
        }
    }

    #[test]
    fn every_value_parses_back_and_matches_its_serde_name() {
        round_trips::<DeviceChoice>();
        round_trips::<BetaSchedule>();
        round_trips::<TimestepSpacing>();
        round_trips::<PredictionType>();
        round_trips::<VarianceType>();
        round_trips::<Blend>();
        round_trips::<Toy2d>();
        round_trips::<LossKind>();
        // The U-Net's choices are spelled as the core's, and `sample` is not one of them.
        for v in UNetPrediction::value_variants() {
            assert_eq!(cli_name(v), cli_name(&PredictionType::from(*v)));
        }
        assert!(UNetPrediction::from_str("sample", false).is_err());
        assert_eq!(
            UNetPrediction::from_str("v", false).map(PredictionType::from),
            Ok(PredictionType::VPrediction)
        );
        assert_eq!(
            BetaSchedule::from_str("squaredcos_cap_v2", false),
            Ok(BetaSchedule::Cosine)
        );
        assert_eq!(DeviceChoice::from_str("flex", false), Ok(DeviceChoice::Cpu));
    }
}
