//! The sampler's runs with the page's model workers: which runs have them, and their pieces.

use super::{SamplerJob, stepped};
use crate::app::jobs::pieces::{PieceWorkers, Pieces};
use crate::app::settings::sampler::ModelSpec;
use crate::app::unet_file::WeightsId;

/// The page's model workers for a U-Net with these weights (src/app/jobs/web_models.rs); none on
/// the desktop, where rayon shares each conv.
#[cfg(target_arch = "wasm32")]
fn page_model_workers(weights: WeightsId) -> Option<Box<dyn PieceWorkers>> {
    crate::app::jobs::web_models::for_weights(weights)
}

#[cfg(not(target_arch = "wasm32"))]
fn page_model_workers(_: WeightsId) -> Option<Box<dyn PieceWorkers>> {
    None
}

impl SamplerJob {
    /// The page's model workers for `spec`'s U-Net, when its calls run in pieces on the frame
    /// loop (the exact denoiser stays on the page's thread: its calls are light).
    pub(super) fn model_workers(&self, spec: ModelSpec) -> Option<Box<dyn PieceWorkers>> {
        (self.piece.is_some() && spec.unet)
            .then(|| page_model_workers(spec.weights))
            .flatten()
    }

    /// A call's pieces on the frame loop: [`FRAME_PIECE`] images each with model workers (the
    /// kernel helpers then pause), else [`FRAME_PIECE`] per kernel thread; `None` on a thread.
    pub(super) fn pieces<'w>(&self, workers: Option<&'w dyn PieceWorkers>) -> Option<Pieces<'w>> {
        self.piece.map(|images| match workers {
            Some(w) => Pieces {
                images,
                workers: Some(w),
            },
            None => stepped::piece_now(images).into(),
        })
    }
}
