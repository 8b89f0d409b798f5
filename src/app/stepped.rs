//! The core's sampling loops, one step per poll: the same [`SampleRun`] steps as
//! [`crate::diffusion::sample_loop`], with a step boundary ([`yield_now`]) after each, so a job
//! on the frame loop gives the page back between U-Net steps.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Device, Tensor};

use super::thread::yield_now;
use crate::diffusion::noise::{initial_noise, step_noise};
use crate::diffusion::{Denoiser, SampleRun, Scheduler, StepFrame};
use crate::error::Result;

/// [`crate::diffusion::sample_loop`], stepped: x_0, or `None` when `cancel` was set.
pub async fn sample_loop<N>(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: Tensor<4>,
    noise: N,
    cancel: &AtomicBool,
    mut on_step: impl FnMut(&StepFrame),
) -> Result<Option<Tensor<4>>>
where
    N: FnMut(usize, [usize; 4]) -> Tensor<4>,
{
    let mut run = SampleRun::new(denoiser, scheduler, x_t, noise)?;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match run.next_step() {
            Some(frame) => on_step(&frame?),
            None => return Ok(Some(run.current().clone())),
        }
        yield_now().await;
    }
}

/// [`crate::diffusion::sample_seeded`], stepped: the same noises, so the same samples.
pub async fn sample_seeded(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    seed: u64,
    batch: usize,
    cancel: &AtomicBool,
    device: &Device,
    on_step: impl FnMut(&StepFrame),
) -> Result<Option<Tensor<4>>> {
    let [c, h, w] = denoiser.sample_shape();
    let x_t = initial_noise(seed, [batch, c, h, w], device);
    sample_loop(
        denoiser,
        scheduler,
        x_t,
        |k, shape| step_noise(seed, k, shape, device),
        cancel,
        on_step,
    )
    .await
}
