//! The diffusion math: schedules, timestep spacings, the forward process, the DDPM and DDIM
//! schedulers, seeded noise and the sampling loop. No UI code lives here.

pub mod chain;
pub mod denoiser;
pub mod editing;
pub mod flow_matching;
pub mod forward;
pub mod interpolation;
pub mod noise;
pub mod sampling;
pub mod schedule;
pub mod scheduler;
pub mod solvers;
pub mod timesteps;

pub use chain::ForwardChain;
pub use denoiser::Denoiser;
pub use forward::{Posterior, q_posterior, q_sample, q_step};
pub use noise::{chain_noise, initial_noise, lerp, slerp, step_noise};
pub use sampling::{SampleRun, StepFrame, sample_loop, sample_seeded};
pub use schedule::{BetaSchedule, NoiseSchedule, ScheduleConfig};
pub use scheduler::{
    DdimTerms, PredictionType, SamplerKind, Scheduler, SchedulerConfig, StepOutput, VarianceType,
};
pub use timesteps::{TimestepSpacing, timesteps};
