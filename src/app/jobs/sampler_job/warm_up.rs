//! Warming the model up: a few model calls on pieces of noise, a poll each, nothing sent back
//! (`SamplerCommand::WarmUp`).

use std::sync::atomic::{AtomicBool, Ordering};

use super::{FRAME_PIECE, SamplerJob};
use crate::app::jobs::pieces::{WARM_UP_CALLS, WARM_UP_CALLS_WITH_WORKERS, warm_up_call};
use crate::app::jobs::thread::yield_now;
use crate::app::settings::sampler::ModelSpec;
use crate::diffusion::ScheduleConfig;
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
        let last = schedule.num_train_timesteps.max(1) - 1;
        // On a GPU in the page one call is enough: it makes every kernel's pipeline, and the
        // GPU would only queue the rest behind the first run.
        // With model workers, three times as many (they warm up as many of their own): the
        // first run's pieces were still slower after 12.
        let calls = match (reads_synchronously(&self.device), &workers) {
            (true, Some(_)) => WARM_UP_CALLS_WITH_WORKERS,
            (true, None) => WARM_UP_CALLS,
            (false, _) => 1,
        };
        for k in 0..calls {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            warm_up_call(model.as_ref(), k, piece, last, &self.device)?;
            yield_now().await;
        }
        Ok(())
    }
}
