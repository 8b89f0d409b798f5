//! Warming the model up: a few model calls on pieces of noise, a poll each, nothing sent back
//! (`SamplerCommand::WarmUp`).

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Tensor;

use super::{FRAME_PIECE, SamplerJob};
use crate::app::jobs::pieces::WARM_UP_CALLS;
use crate::app::jobs::thread::yield_now;
use crate::app::settings::sampler::ModelSpec;
use crate::data::mnist::SIDE;
use crate::diffusion::ScheduleConfig;
use crate::diffusion::noise::gaussian;
use crate::error::Result;
use crate::tensor_util::reads_synchronously;

impl SamplerJob {
    /// Builds `spec`'s model and runs it [`WARM_UP_CALLS`] times on a piece of noise, from
    /// t = T − 1 down, a poll each; stops when cancelled (a run asked for).
    pub(super) async fn warm_up(
        &mut self,
        spec: ModelSpec,
        schedule: ScheduleConfig,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let model = self.model(spec, schedule)?;
        yield_now().await;
        // The run's pieces: with the page's model workers (which warm up by themselves), a
        // piece a call on this thread alone; else more images where the page has kernel
        // workers (they come up before the app's first frame, and warm up here too).
        let workers = self.model_workers(spec);
        let _paused = workers.as_ref().map(|_| difflab_kernels::helpers::pause());
        let piece = match workers {
            Some(_) => FRAME_PIECE,
            None => crate::app::jobs::stepped::piece_now(FRAME_PIECE),
        };
        let n = piece * SIDE * SIDE;
        let last = schedule.num_train_timesteps.max(1) - 1;
        // On a GPU in the page one call is enough: it makes every kernel's pipeline, and the
        // GPU would only queue the rest behind the first run.
        // With model workers, three times as many (they warm up as many of their own): the
        // first run's pieces were still slower after 12.
        let calls = match (reads_synchronously(&self.device), &workers) {
            (true, Some(_)) => 3 * WARM_UP_CALLS,
            (true, None) => WARM_UP_CALLS,
            (false, _) => 1,
        };
        for k in 0..calls {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let x = Tensor::<1>::from_floats(gaussian(0, k as u64, n).as_slice(), &self.device)
                .reshape([piece, 1, SIDE, SIDE]);
            let t = last - last * (k % WARM_UP_CALLS) / WARM_UP_CALLS;
            model.forward(x, &vec![t; piece])?;
            yield_now().await;
        }
        Ok(())
    }
}
