//! The memory a run needs: a batch clamped to what fits, a comparison refused that would not.

use super::super::sampler::{LabelPick, RunSpec};
use super::SamplerJob;
use crate::data::mnist::SIDE;
use crate::error::{DiffError, Result};

impl SamplerJob {
    /// The bytes a run keeps per image for scrubbing: every step's frame holds up to nine
    /// tensors (x_t, x̂0, ε, DDIM's four terms, guidance's ε_∅ and ε_c) of f32 per channel.
    pub(super) fn kept_bytes_per_image(spec: &RunSpec) -> Result<f64> {
        let [c, h, w] = if spec.model.unet {
            let config = &crate::app::unet_file::get(spec.model.weights)?.config;
            [config.in_channels, config.image_size, config.image_size]
        } else {
            [1, SIDE, SIDE]
        };
        Ok((spec.sampler.nfe() + 1) as f64 * 9.0 * 4.0 * (c * h * w) as f64)
    }

    /// Refuses a comparison whose kept frames (every step of every run) would not fit in memory.
    pub(super) fn check_compare_memory(runs: &[RunSpec]) -> Result<()> {
        use crate::model::memory::{available_memory_bytes, human_bytes};
        let Some(available) = available_memory_bytes() else {
            return Ok(());
        };
        let mut need = 0.0;
        for spec in runs {
            need += Self::kept_bytes_per_image(spec)? * spec.batch as f64;
        }
        if need > available {
            return Err(DiffError::invalid(format!(
                "this comparison keeps every step of its {} runs, about {} of memory, and only {} \
                 is available: use a smaller batch",
                runs.len(),
                human_bytes(need),
                human_bytes(available)
            )));
        }
        Ok(())
    }

    /// `spec` with its batch clamped to what fits in memory, and the message saying so; `None`
    /// when it fits (or the available memory is unknown). The estimate
    /// ([`MemoryEstimate`](crate::model::memory::MemoryEstimate)) adds the pictures a run keeps
    /// ([`Self::kept_bytes_per_image`]).
    pub(super) fn fit_memory(&mut self, spec: &RunSpec) -> Result<Option<(RunSpec, String)>> {
        use crate::model::memory::{MemoryEstimate, Workload, available_memory_bytes, human_bytes};
        let Some(available) = available_memory_bytes() else {
            return Ok(None);
        };
        let unet = self.unet(spec.model.weights)?;
        let mut estimate = MemoryEstimate::new(
            &unet.config,
            burn::module::Module::num_params(&unet.model),
            Workload::Sample {
                guided: spec.model.takes_digits() && spec.guidance.label != LabelPick::Any,
                kept_images: 0,
            },
        );
        if !spec.model.unet {
            // The exact denoiser: its set is already in memory; the pictures remain.
            estimate.per_image_bytes = 0.0;
        }
        estimate.per_image_bytes += Self::kept_bytes_per_image(spec)?;
        let need = estimate.bytes(spec.batch);
        if need <= available {
            return Ok(None);
        }
        let fits = estimate.largest_batch(available);
        if fits == 0 {
            return Err(DiffError::invalid(format!(
                "this run needs about {} of memory and only {} is available: use fewer steps",
                human_bytes(estimate.bytes(1)),
                human_bytes(available)
            )));
        }
        let message = format!(
            "Batch {} would need about {} of memory ({} available): sampling {fits} images instead.",
            spec.batch,
            human_bytes(need),
            human_bytes(available)
        );
        Ok(Some((
            RunSpec {
                batch: fits,
                ..spec.clone()
            },
            message,
        )))
    }
}
