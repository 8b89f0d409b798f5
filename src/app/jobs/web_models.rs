//! The page's model workers (web/models.js): Web Workers that each run the app's own module with
//! a shipped U-Net and take whole pieces of a sampling step's batch ([`PieceWorkers`]), while the
//! page's main thread runs the others between frames. The same code computes a piece on either
//! side, so a run's samples are the same bit for bit as on the page's one thread
//! (`?threads=1`).
//!
//! In a worker the module's `main` starts nothing (there is no page): the worker calls
//! [`difflab_worker_warm_up`] once and [`difflab_worker_forward`] for each piece it claims.

use std::cell::RefCell;
use std::sync::Arc;

use burn::tensor::Device;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::pieces::PieceWorkers;
use crate::app::unet_file::{SHIPPED, SHIPPED_FLOW, WeightsId};
use crate::error::{DiffError, Result};
use crate::model::{Denoiser, UNetDenoiser};

#[wasm_bindgen(module = "/web/models.js")]
extern "C" {
    fn models_spawn(module: &JsValue, count: u32, glue: &str, weights: &str) -> js_sys::Promise;
    fn models_ready() -> u32;
    fn models_offer(weights: &str, x: &[f32], shape: &[u32], t: u32, piece: u32) -> u32;
    fn models_claim(offer: u32, i: u32) -> bool;
    fn models_take(offer: u32, i: u32) -> JsValue;
    fn models_retire(offer: u32);
    fn models_next() -> js_sys::Promise;
    fn models_drawing(on: bool);
}

/// Model workers at most: each holds a copy of the module's memory (the shipped nets, digits and
/// fonts, about 30 MB) and its activations.
const MAX_MODEL_WORKERS: u32 = 3;

/// Starts `count` model workers (at most [`MAX_MODEL_WORKERS`]) on the page's own module; the
/// promise is kept when each has warmed up on the shipped U-Net (or failed).
pub fn start(count: u32) -> js_sys::Promise {
    models_spawn(
        &wasm_bindgen::module(),
        count.min(MAX_MODEL_WORKERS),
        "difflab.js",
        &SHIPPED.0.to_string(),
    )
}

/// Model workers ready now.
pub fn ready() -> usize {
    models_ready() as usize
}

/// Says whether the page is drawing a frame: the workers start no piece meanwhile.
pub fn drawing(on: bool) {
    models_drawing(on);
}

/// A promise kept when a worker's next piece comes back.
pub fn next_piece() -> js_sys::Promise {
    models_next()
}

/// The page's model workers for a U-Net with these weights: the shipped nets, which every
/// worker's module holds (a file the user opened is only in the page's memory).
pub fn for_weights(weights: WeightsId) -> Option<Box<dyn PieceWorkers>> {
    (ready() > 0 && (weights == SHIPPED || weights == SHIPPED_FLOW)).then(|| {
        Box::new(PageModels {
            weights: weights.0.to_string(),
        }) as Box<dyn PieceWorkers>
    })
}

/// web/models.js's workers for one net.
struct PageModels {
    /// Its [`WeightsId`], as the workers are told it.
    weights: String,
}

impl PieceWorkers for PageModels {
    fn offer(&self, x: &[f32], shape: [usize; 4], t: usize, piece: usize) -> Result<u32> {
        let shape = shape.map(|d| d as u32);
        Ok(models_offer(
            &self.weights,
            x,
            &shape,
            t as u32,
            piece as u32,
        ))
    }

    fn claim(&self, offer: u32, i: usize) -> bool {
        models_claim(offer, i as u32)
    }

    fn take(&self, offer: u32, i: usize) -> Option<Result<Vec<f32>>> {
        let y = models_take(offer, i as u32);
        if y.is_undefined() {
            return None;
        }
        Some(match y.dyn_into::<js_sys::Float32Array>() {
            Ok(values) => Ok(values.to_vec()),
            Err(why) => {
                Err(DiffError::Backend(why.as_string().unwrap_or_else(|| {
                    "a model worker's piece did not come back".into()
                })))
            }
        })
    }

    fn retire(&self, offer: u32) {
        models_retire(offer);
    }
}

thread_local! {
    /// In a worker: the net it runs, built at its first piece.
    static MODEL: RefCell<Option<(WeightsId, Arc<UNetDenoiser>)>> = const { RefCell::new(None) };
}

/// In a worker: the U-Net with these weights, built once.
fn model(weights: &str) -> Result<Arc<UNetDenoiser>> {
    let id = weights
        .parse()
        .map(WeightsId)
        .map_err(|_| DiffError::invalid(format!("no weights {weights}")))?;
    if let Some((_, m)) = MODEL.with(|m| m.borrow().clone()).filter(|(w, _)| *w == id) {
        return Ok(m);
    }
    let (model, config) = crate::app::unet_file::get(id)?.build(&Device::flex())?;
    let m = Arc::new(UNetDenoiser { model, config });
    MODEL.with(|slot| *slot.borrow_mut() = Some((id, m.clone())));
    Ok(m)
}

/// In a worker: the U-Net's output for `batch` images `x` ([batch, c, h, w]) at timestep `t`.
#[wasm_bindgen]
pub fn difflab_worker_forward(
    weights: &str,
    x: Vec<f32>,
    batch: u32,
    c: u32,
    h: u32,
    w: u32,
    t: u32,
) -> std::result::Result<Vec<f32>, String> {
    let run = || -> Result<Vec<f32>> {
        let m = model(weights)?;
        let shape = [batch, c, h, w].map(|d| d as usize);
        let x = crate::tensor_util::tensor4(x, shape, &Device::flex());
        crate::tensor_util::to_vec(m.forward(x, &vec![t as usize; shape[0]])?)
    };
    run().map_err(|e| e.to_string())
}

/// In a worker: builds the net and runs it as the page's warm-up does (a run's pieces of noise
/// from t = T − 1 down, three times over: after one pass a first run's pieces still took half as
/// long again as the next run's), so that V8 has compiled its hot code before a first run.
#[wasm_bindgen]
pub fn difflab_worker_warm_up(weights: &str) -> std::result::Result<(), String> {
    use super::pieces::{FRAME_PIECE, WARM_UP_CALLS_WITH_WORKERS, warm_up_call};
    let run = || -> Result<()> {
        let m = model(weights)?;
        let last = crate::diffusion::ScheduleConfig::default().num_train_timesteps - 1;
        for k in 0..WARM_UP_CALLS_WITH_WORKERS {
            warm_up_call(m.as_ref(), k, FRAME_PIECE, last, &Device::flex())?;
        }
        Ok(())
    };
    run().map_err(|e| e.to_string())
}
