//! The sampling loop: x_T → x_0 one scheduler step at a time, yielding every step as it happens.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Tensor;

use super::denoiser::Denoiser;
use super::scheduler::{DdimTerms, Scheduler};
use crate::error::{DiffError, Result};

/// One step of a run, as it happened.
pub struct StepFrame {
    /// 0-based step index.
    pub index: usize,
    /// The timestep of the input x_t.
    pub t: usize,
    /// The timestep of the output (`None` after the last step).
    pub prev_t: Option<usize>,
    /// The input x_t.
    pub x_t: Tensor<4>,
    /// The output x_{t_prev}.
    pub prev_sample: Tensor<4>,
    /// The predicted x̂0.
    pub pred_x0: Tensor<4>,
    /// The predicted noise ε̂.
    pub pred_eps: Tensor<4>,
    /// DDIM's three update terms (`None` for DDPM).
    pub ddim_terms: Option<DdimTerms>,
}

/// A run in progress. Call [`SampleRun::next_step`] until it returns `None`.
pub struct SampleRun<'a, N> {
    denoiser: &'a dyn Denoiser,
    scheduler: &'a Scheduler,
    x: Tensor<4>,
    index: usize,
    noise: N,
}

impl<'a, N> SampleRun<'a, N>
where
    N: FnMut(usize, [usize; 4]) -> Tensor<4>,
{
    /// Starts from `x_T`. `noise(k, shape)` gives the variance noise of step k; it is called only
    /// for steps that add noise.
    pub fn new(
        denoiser: &'a dyn Denoiser,
        scheduler: &'a Scheduler,
        x_t: Tensor<4>,
        noise: N,
    ) -> Result<Self> {
        super::denoiser::check_input_shape(denoiser, &x_t, "x_T")?;
        super::denoiser::check_prediction(denoiser, scheduler.config().prediction_type)?;
        Ok(Self {
            denoiser,
            scheduler,
            x: x_t,
            index: 0,
            noise,
        })
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.index
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> usize {
        self.scheduler.timesteps().len()
    }

    /// The current sample (x_T before the first step, x_0 after the last).
    pub fn current(&self) -> &Tensor<4> {
        &self.x
    }

    /// Takes one step, or returns `None` when the run is over.
    pub fn next_step(&mut self) -> Option<Result<StepFrame>> {
        let t = *self.scheduler.timesteps().get(self.index)?;
        Some(self.step_at(t))
    }

    /// The next step's input x_t and its timestep, or `None` when the run is over: for a caller
    /// that computes the model's output itself (in pieces) and passes it to
    /// [`SampleRun::step_with`].
    pub fn next_input(&self) -> Option<(Tensor<4>, usize)> {
        let t = *self.scheduler.timesteps().get(self.index)?;
        Some((self.x.clone(), t))
    }

    /// Takes the next step with the model's output at [`SampleRun::next_input`] given.
    pub fn step_with(&mut self, model_output: Tensor<4>) -> Result<StepFrame> {
        let t = *self.scheduler.timesteps().get(self.index).ok_or_else(|| {
            DiffError::invalid("the run is over: there is no step to take".to_string())
        })?;
        self.finish_step(t, model_output)
    }

    fn step_at(&mut self, t: usize) -> Result<StepFrame> {
        let batch_t = vec![t; self.x.dims()[0]];
        let model_output = self.denoiser.forward(self.x.clone(), &batch_t)?;
        self.finish_step(t, model_output)
    }

    fn finish_step(&mut self, t: usize, model_output: Tensor<4>) -> Result<StepFrame> {
        let shape = self.x.dims();
        if model_output.dims() != shape {
            return Err(DiffError::invalid(format!(
                "the model output has shape {:?} but x_t has {shape:?}",
                model_output.dims()
            )));
        }
        // One reduction per step: a damaged or diverging model stops the run here, saying
        // where, instead of turning every later step (and the output) into NaN.
        if !all_finite(&model_output)? {
            return Err(DiffError::NonFinite(format!(
                "the model produced non-finite values at step {} of {} (t = {t})",
                self.index + 1,
                self.scheduler.timesteps().len()
            )));
        }
        let noise = self
            .scheduler
            .needs_noise(t)
            .then(|| (self.noise)(self.index, shape));
        let out = self
            .scheduler
            .step(model_output, t, self.x.clone(), noise)?;
        let frame = StepFrame {
            index: self.index,
            t,
            prev_t: self.scheduler.previous_timestep(t)?,
            x_t: std::mem::replace(&mut self.x, out.prev_sample.clone()),
            prev_sample: out.prev_sample,
            pred_x0: out.pred_original_sample,
            pred_eps: out.pred_epsilon,
            ddim_terms: out.ddim_terms,
        };
        self.index += 1;
        Ok(frame)
    }
}

/// Whether every value of `x` is finite (one reduction and a one-value read-back). A GPU tensor
/// in the browser cannot be read back synchronously: there the answer is `true`, and the jobs,
/// which read every step's values asynchronously anyway, check them as they read
/// (`app::sampler::frame_of`).
pub fn all_finite(x: &Tensor<4>) -> Result<bool> {
    if !crate::tensor_util::reads_synchronously(&x.device()) {
        return Ok(true);
    }
    let v = x
        .clone()
        .is_finite()
        .all()
        .int()
        .try_into_data()
        .map_err(|e| DiffError::Backend(format!("{e:?}")))?
        .convert::<i32>()
        .try_into_vec::<i32>()
        .map_err(|e| DiffError::Backend(format!("{e:?}")))?;
    Ok(v.first().is_some_and(|&b| b != 0))
}

/// Runs a whole loop, calling `on_step` after every step. Returns x_0, or `None` when `cancel`
/// was set (it is checked between steps).
pub fn sample_loop<N>(
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
            None => return Ok(Some(run.x)),
        }
    }
}

/// A whole seeded run: x_T from `seed` (stream 0) and the variance noise of step k from stream
/// k + 1, as in [`super::noise`]; `batch` samples, item i from seed + i.
pub fn sample_seeded(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    seed: u64,
    batch: usize,
    cancel: &AtomicBool,
    device: &burn::tensor::Device,
    on_step: impl FnMut(&StepFrame),
) -> Result<Option<Tensor<4>>> {
    let [c, h, w] = denoiser.sample_shape();
    let x_t = super::noise::initial_noise(seed, [batch, c, h, w], device);
    sample_loop(
        denoiser,
        scheduler,
        x_t,
        |k, shape| super::noise::step_noise(seed, k, shape, device),
        cancel,
        on_step,
    )
}
