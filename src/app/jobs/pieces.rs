//! A model call's batch in pieces on the page's frame loop: a few images at a time with a step
//! boundary after each (a U-Net step of 16 digits takes a page's CPU well over a frame), and,
//! with model workers, some pieces on other threads ([`PieceWorkers`]).

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Tensor;

use super::thread::yield_now;
use crate::diffusion::Denoiser;
use crate::error::Result;
use crate::tensor_util::{read_vec, tensor4};

/// Images per piece of a U-Net step when the sampler runs on the frame loop. With the simd128
/// kernels a piece of 4 digits took about 20 ms of a page's CPU and one of 2 about 10 ms: a
/// frame that draws after a slice of compute then stays within 50 ms where drawing is slow
/// (about 30 ms in headless Chromium's software WebGL; docs/web.md).
pub const FRAME_PIECE: usize = 2;

/// Model calls a warm-up makes (of a run's piece of images each, [`FRAME_PIECE`] per thread):
/// in the page the first run's slow slices were over within its first steps.
pub const WARM_UP_CALLS: usize = 12;

/// Warm-up calls with model workers, on the page's thread and in each worker: three passes
/// (after one, a first run's pieces still took half as long again as the next run's).
pub const WARM_UP_CALLS_WITH_WORKERS: usize = 3 * WARM_UP_CALLS;

/// Warm-up call `k`: the model on `piece` images of noise (seed 0, stream k) at one t, from
/// `last_t` down over [`WARM_UP_CALLS`] calls and again from the top.
pub fn warm_up_call(
    denoiser: &dyn Denoiser,
    k: usize,
    piece: usize,
    last_t: usize,
    device: &burn::tensor::Device,
) -> Result<()> {
    let [c, h, w] = denoiser.sample_shape();
    let noise = crate::diffusion::noise::gaussian(0, k as u64, piece * c * h * w);
    let x = Tensor::<1>::from_floats(noise.as_slice(), device).reshape([piece, c, h, w]);
    let t = last_t - last_t * (k % WARM_UP_CALLS) / WARM_UP_CALLS;
    denoiser.forward(x, &vec![t; piece]).map(|_| ())
}

/// Images `i·piece ..` of a batch of `b` in piece `i`.
fn piece_range(i: usize, piece: usize, b: usize) -> std::ops::Range<usize> {
    i * piece..((i + 1) * piece).min(b)
}

/// How a model call's batch is run: `images` at a time with a step boundary after each piece,
/// and, with `workers`, some of the pieces on other threads (the page's model workers).
#[derive(Clone, Copy)]
pub struct Pieces<'a> {
    /// Images per piece.
    pub images: usize,
    /// Threads that take pieces of each call too.
    pub workers: Option<&'a dyn PieceWorkers>,
}

impl From<usize> for Pieces<'_> {
    fn from(images: usize) -> Self {
        Self {
            images,
            workers: None,
        }
    }
}

/// Other threads that run pieces of a model call's batch with the same model (in the page: Web
/// Workers, each with the app's own WebAssembly module and the model, src/app/jobs/web_models.rs).
/// The caller [`offer`](Self::offer)s a call, then runs the pieces it
/// [`claim`](Self::claim)s, from the first, while the workers claim from the last, so that
/// neither waits long for the other; then it [`take`](Self::take)s the workers' outputs.
pub trait PieceWorkers {
    /// Offers a call to the workers: the batch's values, its shape, the timestep and the images
    /// per piece. The offer's number.
    fn offer(&self, x: &[f32], shape: [usize; 4], t: usize, piece: usize) -> Result<u32>;
    /// Whether the caller gets piece `i` of `offer` (false: a worker has it).
    fn claim(&self, offer: u32, i: usize) -> bool;
    /// A worker's output for piece `i` of `offer`, once it is back (an error: the worker's).
    fn take(&self, offer: u32, i: usize) -> Option<Result<Vec<f32>>>;
    /// The offer is over (done or cancelled): workers take no more of its pieces.
    fn retire(&self, offer: u32);
}

/// Retires an offer when dropped: at its end, or when a cancelled run drops the call.
pub(super) struct Offer<'a> {
    workers: &'a dyn PieceWorkers,
    number: u32,
}

impl Drop for Offer<'_> {
    fn drop(&mut self) {
        self.workers.retire(self.number);
    }
}

/// Pending, without asking to be polled again, until `ready` answers: a job on the page's frame
/// loop then waits for the browser (which delivers the workers' messages between slices).
async fn until<T>(mut ready: impl FnMut() -> Option<T>) -> T {
    std::future::poll_fn(move |_| match ready() {
        Some(v) => std::task::Poll::Ready(v),
        None => std::task::Poll::Pending,
    })
    .await
}

/// Offers the call (`x` at `t`) to `pieces`' workers when it has more than one piece.
pub(super) async fn offer<'w>(
    pieces: Pieces<'w>,
    x: &Tensor<4>,
    t: usize,
) -> Result<Option<Offer<'w>>> {
    let shape = x.dims();
    match pieces.workers {
        Some(workers) if shape[0] > pieces.images => {
            let values = read_vec(x.clone()).await?;
            Ok(Some(Offer {
                workers,
                number: workers.offer(&values, shape, t, pieces.images.max(1))?,
            }))
        }
        _ => Ok(None),
    }
}

/// The model's output for the batch `x` at `t`, in pieces of `piece` images with a step
/// boundary after each piece this thread runs (with an `offer`, the pieces it claims; the
/// workers' come back from them); `None` when `cancel` was set between pieces.
pub(super) async fn forward_in_pieces(
    denoiser: &dyn Denoiser,
    x: Tensor<4>,
    t: usize,
    piece: usize,
    offer: Option<Offer<'_>>,
    cancel: &AtomicBool,
) -> Result<Option<Tensor<4>>> {
    let shape = x.dims();
    let b = shape[0];
    let piece = piece.max(1);
    let mut outputs: Vec<Option<Tensor<4>>> = vec![None; b.div_ceil(piece)];
    for (i, out) in outputs.iter_mut().enumerate() {
        if offer
            .as_ref()
            .is_some_and(|o| !o.workers.claim(o.number, i))
        {
            continue;
        }
        let images = piece_range(i, piece, b);
        *out = Some(denoiser.forward(
            x.clone().narrow(0, images.start, images.len()),
            &vec![t; images.len()],
        )?);
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        yield_now().await;
    }
    if let Some(o) = &offer {
        for (i, out) in outputs.iter_mut().enumerate() {
            if out.is_none() {
                // Cancel answers while a worker's piece is still out (a worker that never
                // answers would otherwise hold the job for good).
                let piece_back = until(|| {
                    if cancel.load(Ordering::Relaxed) {
                        Some(None)
                    } else {
                        o.workers.take(o.number, i).map(Some)
                    }
                });
                let Some(values) = piece_back.await else {
                    return Ok(None);
                };
                let values = values?;
                let n = piece_range(i, piece, b).len();
                *out = Some(tensor4(
                    values,
                    [n, shape[1], shape[2], shape[3]],
                    &x.device(),
                ));
            }
        }
    }
    Ok(Some(Tensor::cat(
        outputs.into_iter().flatten().collect(),
        0,
    )))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Waker};

    use burn::tensor::{Device, Tensor};

    use super::*;
    use crate::diffusion::sample_seeded;
    use crate::model::ExactDenoiser;
    use crate::tensor_util::to_vec;

    /// Polls `f` to the end with a no-op waker (pending without a wake polls again at once).
    fn drive<T>(f: impl Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// The page's model workers, as threads: each offer's pieces are claimed from the last by
    /// one thread running the same model, which has its first piece before `offer` returns (a
    /// prompt worker), so every call is shared.
    struct ThreadWorkers {
        model: Arc<ExactDenoiser>,
        offers: std::sync::Mutex<Vec<Arc<Shared>>>,
        /// Pieces the worker ran, over all offers.
        ran: Arc<std::sync::atomic::AtomicUsize>,
        retired: std::sync::atomic::AtomicUsize,
    }

    #[derive(Default)]
    struct Shared {
        /// Each piece: 0 free, 1 the caller's, 2 the worker's, 3 retired.
        claims: Vec<std::sync::atomic::AtomicU8>,
        outputs: std::sync::Mutex<std::collections::HashMap<usize, Vec<f32>>>,
    }

    impl PieceWorkers for ThreadWorkers {
        fn offer(&self, x: &[f32], shape: [usize; 4], t: usize, piece: usize) -> Result<u32> {
            let count = shape[0].div_ceil(piece);
            let shared = Arc::new(Shared {
                claims: (0..count).map(|_| Default::default()).collect(),
                ..Shared::default()
            });
            let mut offers = self.offers.lock().unwrap();
            offers.push(shared.clone());
            let (x, model, ran) = (x.to_vec(), self.model.clone(), self.ran.clone());
            let (first, second) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let len = shape[1] * shape[2] * shape[3];
                for (n, i) in (0..count).rev().enumerate() {
                    // After its first piece, the worker lets the caller claim its own first.
                    while n == 1 && shared.claims[0].load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                    if shared.claims[i]
                        .compare_exchange(0, 2, Ordering::SeqCst, Ordering::SeqCst)
                        .is_err()
                    {
                        continue;
                    }
                    let _ = first.send(());
                    let (start, end) = (i * piece, (i * piece + piece).min(shape[0]));
                    let device = Device::flex();
                    let xs = crate::tensor_util::tensor4(
                        x[start * len..end * len].to_vec(),
                        [end - start, shape[1], shape[2], shape[3]],
                        &device,
                    );
                    let y = to_vec(model.forward(xs, &vec![t; end - start]).unwrap()).unwrap();
                    ran.fetch_add(1, Ordering::SeqCst);
                    shared.outputs.lock().unwrap().insert(i, y);
                }
            });
            second.recv().unwrap();
            Ok(offers.len() as u32 - 1)
        }

        fn claim(&self, offer: u32, i: usize) -> bool {
            self.offers.lock().unwrap()[offer as usize].claims[i]
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        }

        fn take(&self, offer: u32, i: usize) -> Option<Result<Vec<f32>>> {
            let offers = self.offers.lock().unwrap();
            let y = offers[offer as usize].outputs.lock().unwrap().remove(&i);
            y.map(Ok)
        }

        fn retire(&self, offer: u32) {
            for c in &self.offers.lock().unwrap()[offer as usize].claims {
                let _ = c.compare_exchange(0, 3, Ordering::SeqCst, Ordering::SeqCst);
            }
            self.retired.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A run whose calls are shared with a model worker gives the same samples as the core's
    /// run, bit for bit, and every call's offer is retired.
    #[test]
    fn pieces_shared_with_model_workers_give_the_same_samples() {
        let device = Device::flex();
        let (model, scheduler) = crate::app::jobs::stepped::tests::exact_and_ddim(4, 9, 5);
        let model = Arc::new(model);
        let cancel = AtomicBool::new(false);
        let core = sample_seeded(model.as_ref(), &scheduler, 9, 7, &cancel, &device, |_| {})
            .unwrap()
            .unwrap();
        let workers = ThreadWorkers {
            model: model.clone(),
            offers: Default::default(),
            ran: Default::default(),
            retired: Default::default(),
        };
        let pieces = Pieces {
            images: 2,
            workers: Some(&workers),
        };
        let shared = drive(crate::app::jobs::stepped::sample_seeded(
            model.as_ref(),
            &scheduler,
            9,
            7,
            Some(pieces),
            &cancel,
            &device,
            async |_| {},
        ));
        let bits = |x: Tensor<4>| {
            let v = to_vec(x).unwrap();
            assert!(v.iter().all(|f| f.is_finite()));
            v.into_iter().map(f32::to_bits).collect::<Vec<_>>()
        };
        assert_eq!(bits(shared.unwrap().unwrap()), bits(core));
        // Five calls of 7 images in pieces of 2: each offered and retired, the worker's first
        // piece (the last, of 1 image) taken before the caller began.
        assert_eq!(workers.offers.lock().unwrap().len(), 5);
        assert_eq!(workers.retired.load(Ordering::SeqCst), 5);
        let ran = workers.ran.load(Ordering::SeqCst);
        assert!((5..=5 * 4).contains(&ran), "the worker ran {ran} pieces");
        for offer in workers.offers.lock().unwrap().iter() {
            let claims: Vec<u8> = offer
                .claims
                .iter()
                .map(|c| c.load(Ordering::SeqCst))
                .collect();
            assert_eq!(claims[3], 2, "{claims:?}");
            assert_eq!(claims[0], 1, "{claims:?}");
            assert!(claims.iter().all(|&c| c == 1 || c == 2), "{claims:?}");
        }
    }

    /// A worker that claims the last piece and never answers: the caller runs the others,
    /// then waits, and a Cancel (set here after a few looks) ends the call with nothing.
    #[test]
    fn cancel_answers_while_a_workers_piece_is_out() {
        struct Silent<'a> {
            claimed: std::cell::RefCell<Vec<bool>>,
            looks: std::cell::Cell<usize>,
            cancel: &'a AtomicBool,
            retired: std::cell::Cell<bool>,
        }
        impl PieceWorkers for Silent<'_> {
            fn offer(&self, _: &[f32], shape: [usize; 4], _: usize, piece: usize) -> Result<u32> {
                let mut claimed = vec![false; shape[0].div_ceil(piece)];
                *claimed.last_mut().unwrap() = true;
                *self.claimed.borrow_mut() = claimed;
                Ok(7)
            }
            fn claim(&self, offer: u32, i: usize) -> bool {
                assert_eq!(offer, 7);
                !std::mem::replace(&mut self.claimed.borrow_mut()[i], true)
            }
            fn take(&self, _: u32, _: usize) -> Option<Result<Vec<f32>>> {
                self.looks.set(self.looks.get() + 1);
                if self.looks.get() == 3 {
                    self.cancel.store(true, Ordering::Relaxed);
                }
                None
            }
            fn retire(&self, _: u32) {
                self.retired.set(true);
            }
        }
        let (model, _) = crate::app::jobs::stepped::tests::exact_and_ddim(3, 7, 5);
        let cancel = AtomicBool::new(false);
        let silent = Silent {
            claimed: Default::default(),
            looks: Default::default(),
            cancel: &cancel,
            retired: Default::default(),
        };
        let pieces = Pieces {
            images: 2,
            workers: Some(&silent),
        };
        let x = crate::diffusion::noise::initial_noise(1, [5, 1, 4, 4], &Device::flex());
        let out = drive(async {
            let made = offer(pieces, &x, 500).await.unwrap();
            assert!(made.is_some());
            forward_in_pieces(&model, x.clone(), 500, 2, made, &cancel).await
        });
        assert!(out.unwrap().is_none(), "a cancelled call gives nothing");
        assert_eq!(silent.looks.get(), 3);
        assert!(silent.retired.get(), "the offer was retired");
        assert!(silent.claimed.borrow().iter().all(|&c| c));
    }
}
