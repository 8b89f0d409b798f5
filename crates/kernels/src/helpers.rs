//! Helpers outside rayon that take a share of a batch's direct forward convs.
//!
//! In the page the jobs run on the main thread, which may not block, and rayon's `join` waits
//! on a condition variable (a trap there); so the page's other cores are Web Workers, each with
//! the direct kernel in a small WebAssembly module of its own (crates/conv-worker) on a memory
//! of its own, that the main thread copies a share of the images into (web/pool.js). A conv
//! [`Helpers::start`]s each helper on its share, computes its own images meanwhile, then
//! [`Helpers::finish`]es them: the helper's wide outputs come back and this thread drops their
//! junk columns and adds bias and residual, as for its own. The copies are small beside the
//! work (a 3×3 conv does 9·C_in multiply-adds per value copied).
//!
//! Nothing is registered on the desktop, where rayon shares the batch instead.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// One helper's share of a conv: `y[i][o·cols + q] = Σ_k w[o][k] · xc[i][offs[k] + q]` for each
/// of its images i (`direct::conv_wide` on each).
#[derive(Clone, Copy, Debug)]
pub struct Share<'a> {
    /// The images' zero-padded planes, `xc_len` floats each, one after another.
    pub xc: &'a [f32],
    /// Floats per image in `xc`.
    pub xc_len: usize,
    /// Images in the share.
    pub images: usize,
    /// Where each term k reads in an image's planes.
    pub offs: &'a [usize],
    /// The weights, packed by `direct::pack_rows` for `rows` rows and `offs.len()` terms.
    pub w: &'a [f32],
    /// Output rows (C_out).
    pub rows: usize,
    /// Wide output columns per row (a whole number of vectors).
    pub cols: usize,
}

/// One helper's share of a GroupNorm (+ SiLU) forward: for each of its images, y and the
/// statistics (μ, r) of each group, as `norm::group_norm_forward` computes them.
#[derive(Clone, Copy, Debug)]
pub struct NormShare<'a> {
    /// The images, `gamma.len() · spatial` floats each, one after another.
    pub x: &'a [f32],
    /// Images in the share.
    pub images: usize,
    /// γ and β, one per channel.
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    /// Elements per channel (H·W).
    pub spatial: usize,
    /// Groups.
    pub groups: usize,
    /// ε.
    pub epsilon: f64,
    /// Whether SiLU follows.
    pub silu: bool,
}

/// Threads that run [`Share`]s and [`NormShare`]s (the page's Web Workers).
pub trait Helpers {
    /// Helpers ready now (0 while they start).
    fn count(&self) -> usize;
    /// Starts helper `i` on `share` and returns at once (the share is copied).
    fn start(&self, i: usize, share: &Share<'_>);
    /// Starts helper `i` on a GroupNorm share, whose tasks are its images; its outputs (for
    /// [`Helpers::finish`]) are each image's y, then each image's statistics (2 per group).
    fn start_norm(&self, i: usize, share: &NormShare<'_>);
    /// Takes back a task of helper `i`'s share that it has not begun (see [`Task`]), for the
    /// calling thread to compute instead; `None` once the helper has begun them all. The
    /// helper takes its tasks one at a time from the same counter, so the calling thread, done
    /// with its own images, shares the helper's rest instead of waiting for it.
    fn claim(&self, i: usize) -> Option<usize>;
    /// Waits for helper `i` and writes its wide outputs, `images × rows × cols`, into `y`
    /// (the rows of claimed tasks are left as they were).
    fn finish(&self, i: usize, y: &mut [f32]);
}

/// Output rows of one task (two blocks of the packed weights): a share's tasks are its images'
/// row blocks, `task` t being image t / T's rows from (t mod T)·TASK_ROWS, T = ⌈rows /
/// TASK_ROWS⌉ (web/pool.js's workers split a share the same way).
pub const TASK_ROWS: usize = 16;

/// A share's task: its image, first output row and rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    /// The image in the share.
    pub image: usize,
    /// The first output row.
    pub row: usize,
    /// Output rows.
    pub rows: usize,
}

impl Task {
    /// Task `t` of a share with `rows` output rows.
    pub fn of(t: usize, rows: usize) -> Self {
        let per_image = rows.div_ceil(TASK_ROWS);
        let row = (t % per_image) * TASK_ROWS;
        Self {
            image: t / per_image,
            row,
            rows: TASK_ROWS.min(rows - row),
        }
    }

    /// Tasks in a share of `images` images with `rows` output rows.
    pub fn count(images: usize, rows: usize) -> usize {
        images * rows.div_ceil(TASK_ROWS)
    }
}

thread_local! {
    static HELPERS: RefCell<Option<Rc<dyn Helpers>>> = const { RefCell::new(None) };
    /// Live [`pause`]s on this thread.
    static PAUSES: Cell<usize> = const { Cell::new(0) };
}

/// Gives the convs run on this thread helpers (None takes them away).
pub fn set_helpers(helpers: Option<Rc<dyn Helpers>>) {
    HELPERS.with(|h| *h.borrow_mut() = helpers);
}

/// Helpers ready for this thread's convs (0 without any, as on the desktop, or while paused).
pub fn ready_helpers() -> usize {
    this_threads().map_or(0, |h| h.count())
}

/// Helpers registered on this thread, paused or not (what a status line counts).
pub fn registered_helpers() -> usize {
    HELPERS.with(|h| h.borrow().as_ref().map_or(0, |h| h.count()))
}

/// This thread's helpers, unless paused.
fn this_threads() -> Option<Rc<dyn Helpers>> {
    if PAUSES.with(Cell::get) > 0 {
        return None;
    }
    HELPERS.with(|h| h.borrow().clone())
}

/// Keeps this thread's convs and norms to itself until the guard drops (the page's model
/// workers then have the other cores: a helper's share would only wait behind them). Pauses
/// nest: the helpers come back when the last guard drops.
#[must_use = "the helpers come back when the guard drops"]
pub fn pause() -> Paused {
    PAUSES.with(|p| p.set(p.get() + 1));
    Paused(std::marker::PhantomData)
}

/// A [`pause`] of this thread's helpers (not `Send`: the pause is the thread's).
pub struct Paused(std::marker::PhantomData<Rc<()>>);

impl Drop for Paused {
    fn drop(&mut self) {
        PAUSES.with(|p| p.set(p.get() - 1));
    }
}

/// How a batch is shared: this thread's helpers, the images this thread keeps (the first
/// `own`), and each helper's part.
pub(crate) struct Split {
    pub helpers: Rc<dyn Helpers>,
    pub own: usize,
    pub parts: Vec<Part>,
}

/// One helper's part of a batch: images `first..first + images`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Part {
    pub helper: usize,
    pub first: usize,
    pub images: usize,
}

/// How this thread's ready helpers share a batch of `batch` images whose work per image is
/// `worth` a helper ([`shares`]); `None` where this thread keeps them all.
pub(crate) fn split(batch: usize, worth: bool) -> Option<Split> {
    let helpers = this_threads()?;
    let shares = shares(helpers.count(), batch, worth);
    let own = batch - shares.iter().sum::<usize>();
    let mut first = own;
    let mut parts = Vec::new();
    for (helper, images) in shares.into_iter().enumerate().filter(|(_, m)| *m > 0) {
        parts.push(Part {
            helper,
            first,
            images,
        });
        first += images;
    }
    (!parts.is_empty()).then_some(Split {
        helpers,
        own,
        parts,
    })
}

/// Multiply-adds per image below which a conv keeps its images (the first conv of the U-Net has
/// one input channel): a helper's wake-up and the copies cost more than they save.
pub(crate) const MIN_CONV_MACS: usize = 1 << 20;

/// Elements per image below which a GroupNorm keeps its images (about 40 operations each).
pub(crate) const MIN_NORM_LEN: usize = 1 << 14;

/// How many of `batch` images each of `helpers` takes when the work per image is `worth` a
/// helper; the calling thread keeps the rest (the first images), the smallest share when they
/// do not divide evenly, since it also prepares the helpers' images and finishes their outputs.
pub(crate) fn shares(helpers: usize, batch: usize, worth: bool) -> Vec<usize> {
    if helpers == 0 || batch < 2 || !worth {
        return Vec::new();
    }
    let own = batch / (helpers + 1);
    let rest = batch - own;
    (0..helpers)
        .map(|i| rest / helpers + usize::from(i < rest % helpers))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn tasks_are_row_blocks_of_each_image() {
        use super::Task;
        assert_eq!(Task::count(3, 40), 9);
        let t = |t| Task::of(t, 40);
        assert_eq!(
            t(0),
            Task {
                image: 0,
                row: 0,
                rows: 16
            }
        );
        assert_eq!(
            t(2),
            Task {
                image: 0,
                row: 32,
                rows: 8
            }
        );
        assert_eq!(
            t(4),
            Task {
                image: 1,
                row: 16,
                rows: 16
            }
        );
        assert_eq!(
            Task::of(1, 16),
            Task {
                image: 1,
                row: 0,
                rows: 16
            }
        );
    }

    #[test]
    fn the_caller_keeps_the_smallest_share_and_small_convs_stay_whole() {
        assert_eq!(shares(1, 32, true), vec![16]);
        assert_eq!(shares(1, 5, true), vec![3]);
        assert_eq!(shares(3, 10, true), vec![3, 3, 2]);
        assert_eq!(shares(3, 2, true), vec![1, 1, 0]);
        assert_eq!(shares(1, 1, true), Vec::<usize>::new());
        assert_eq!(shares(1, 32, false), Vec::<usize>::new());
        assert_eq!(shares(0, 32, true), Vec::<usize>::new());
    }
}

#[cfg(test)]
mod split_tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::JoinHandle;

    use super::{Helpers, NormShare, Share, Task, set_helpers};
    use crate::conv::{Addends, ConvGeometry, conv2d_forward};
    use crate::norm::{NormGeometry, group_norm_forward};

    /// Helpers on threads of their own, each running the page's worker kernel on a copy of its
    /// share, as the Web Workers do.
    struct Threads {
        count: usize,
        running: RefCell<Vec<Option<JoinHandle<Vec<f32>>>>>,
        /// Each helper's next image, shared with its thread (web/pool.js: a control word).
        next: Vec<Arc<AtomicUsize>>,
        /// Each helper's tasks.
        tasks: RefCell<Vec<usize>>,
        images_sent: Cell<usize>,
        claimed: Cell<usize>,
        /// Whether the helper threads wait for the calling thread to claim an image first.
        slow: bool,
    }

    impl Helpers for Threads {
        fn count(&self) -> usize {
            self.count
        }

        fn start(&self, i: usize, s: &Share<'_>) {
            let (xc, offs, w) = (s.xc.to_vec(), s.offs.to_vec(), s.w.to_vec());
            let (xc_len, images, rows, cols) = (s.xc_len, s.images, s.rows, s.cols);
            self.images_sent.set(self.images_sent.get() + images);
            self.tasks.borrow_mut()[i] = Task::count(images, rows);
            let next = self.next[i].clone();
            next.store(0, Ordering::SeqCst);
            let slow = self.slow;
            let run = std::thread::spawn(move || {
                let mut y = vec![f32::NAN; images * rows * cols];
                if slow {
                    while next.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                }
                let k = offs.len();
                loop {
                    let t = next.fetch_add(1, Ordering::SeqCst);
                    if t >= Task::count(images, rows) {
                        break;
                    }
                    let task = Task::of(t, rows);
                    // SAFETY: the task's image, weight rows and output rows, as conv_images
                    // asks.
                    let ran = unsafe {
                        difflab_conv_worker::conv_images(
                            xc[task.image * xc_len..].as_ptr(),
                            xc_len,
                            1,
                            offs.as_ptr(),
                            k,
                            w[task.row * k..].as_ptr(),
                            w.len() - task.row * k,
                            task.rows,
                            y[(task.image * rows + task.row) * cols..].as_mut_ptr(),
                            cols,
                        )
                    };
                    assert_eq!(ran, 1);
                }
                y
            });
            self.running.borrow_mut()[i] = Some(run);
        }

        fn start_norm(&self, i: usize, s: &NormShare<'_>) {
            let (x, gamma, beta) = (s.x.to_vec(), s.gamma.to_vec(), s.beta.to_vec());
            let NormShare {
                images,
                spatial,
                groups,
                epsilon,
                silu,
                ..
            } = *s;
            self.images_sent.set(self.images_sent.get() + images);
            self.tasks.borrow_mut()[i] = images;
            let next = self.next[i].clone();
            next.store(0, Ordering::SeqCst);
            let slow = self.slow;
            let run = std::thread::spawn(move || {
                let len = gamma.len() * spatial;
                let mut out = vec![f32::NAN; images * (len + 2 * groups)];
                let (ys, ss) = out.split_at_mut(images * len);
                if slow {
                    while next.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                }
                loop {
                    let j = next.fetch_add(1, Ordering::SeqCst);
                    if j >= images {
                        break;
                    }
                    // SAFETY: image j's input, output and statistics, as norm_image asks.
                    unsafe {
                        difflab_conv_worker::norm_image(
                            x[j * len..].as_ptr(),
                            ys[j * len..].as_mut_ptr(),
                            ss[j * 2 * groups..].as_mut_ptr(),
                            gamma.as_ptr(),
                            beta.as_ptr(),
                            gamma.len(),
                            spatial,
                            groups,
                            epsilon,
                            u32::from(silu),
                        );
                    }
                }
                out
            });
            self.running.borrow_mut()[i] = Some(run);
        }

        fn claim(&self, i: usize) -> Option<usize> {
            let j = self.next[i].fetch_add(1, Ordering::SeqCst);
            let taken = j < self.tasks.borrow()[i];
            self.claimed.set(self.claimed.get() + usize::from(taken));
            taken.then_some(j)
        }

        fn finish(&self, i: usize, y: &mut [f32]) {
            let run = self.running.borrow_mut()[i].take().expect("started");
            y.copy_from_slice(&run.join().expect("helper thread"));
        }
    }

    fn threads(slow: bool) -> Rc<Threads> {
        Rc::new(Threads {
            count: 2,
            running: RefCell::new(vec![None, None]),
            next: vec![Arc::default(), Arc::default()],
            tasks: RefCell::new(vec![0, 0]),
            images_sent: Cell::new(0),
            claimed: Cell::new(0),
            slow,
        })
    }

    #[test]
    fn a_group_norm_shared_with_helpers_equals_the_one_on_this_thread_bit_for_bit() {
        // 5 images of 32 channels on 24 × 24 (18 432 elements: helped), 8 groups, with SiLU.
        let g = NormGeometry {
            batch: 5,
            channels: 32,
            spatial: 24 * 24,
            groups: 8,
        };
        let x: Vec<f32> = (0..g.batch * g.image_len())
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 300.0)
            .collect();
        let gamma: Vec<f32> = (0..32).map(|c| 0.5 + c as f32 / 40.0).collect();
        let beta: Vec<f32> = (0..32).map(|c| c as f32 / 20.0 - 0.7).collect();
        let run = || {
            let mut y = vec![0.0f32; x.len()];
            let mut stats = vec![0.0f32; 2 * g.batch * g.groups];
            // SAFETY: every element is written by the forward pass.
            let yu = unsafe { crate::as_uninit(&mut y) };
            group_norm_forward(&x, &gamma, &beta, &g, 1e-5, true, yu, &mut stats);
            (y, stats)
        };
        let alone = run();
        for slow in [false, true] {
            let t = threads(slow);
            set_helpers(Some(t.clone()));
            // Paused (twice, nested): nothing goes to the helpers until the last guard drops.
            let outer = super::pause();
            let inner = super::pause();
            assert_eq!(super::ready_helpers(), 0);
            assert_eq!(super::registered_helpers(), 2);
            let paused = run();
            drop(inner);
            assert_eq!(super::ready_helpers(), 0);
            drop(outer);
            assert_eq!(super::ready_helpers(), 2);
            assert_eq!(t.images_sent.get(), 0);
            assert_eq!(paused, alone);
            let helped = run();
            set_helpers(None);
            // 5 images: this thread keeps 1, the helpers take 2 and 2.
            assert_eq!(t.images_sent.get(), 4);
            if slow {
                assert!(t.claimed.get() >= 2, "claimed {}", t.claimed.get());
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&alone.0), bits(&helped.0), "y (slow helpers: {slow})");
            assert_eq!(
                bits(&alone.1),
                bits(&helped.1),
                "statistics (slow helpers: {slow})"
            );
        }
    }

    #[test]
    fn a_conv_shared_with_helpers_equals_the_conv_on_this_thread_bit_for_bit() {
        if crate::direct::isa().is_none() {
            return; // no AVX2: the direct kernels (and so the helpers) do not run here
        }
        // 7 images, 32 → 40 channels on 16 × 16 (3.3 M multiply-adds an image: helped; three
        // tasks an image, the last of 8 rows), a 3 × 3 kernel with padding 1, a bias per image
        // and a residual.
        let g = ConvGeometry::new([7, 32, 16, 16], [40, 32, 3, 3], [1, 1], [(1, 1), (1, 1)])
            .expect("geometry");
        let noise = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 1001.0)
                .collect()
        };
        let (x, w) = (noise(g.batch * g.in_len(), 1), noise(g.c_out * g.k(), 2));
        let (bias, residual) = (noise(g.batch * g.c_out, 3), noise(g.batch * g.out_len(), 4));
        let add = Addends {
            bias: Some(&bias),
            residual: Some(&residual),
        };
        let mut alone = vec![0.0f32; g.batch * g.out_len()];
        conv2d_forward(&x, &w, add, &g, &mut alone);
        // Helpers that start at once, and helpers so slow that this thread claims an image of
        // each share before they begin.
        for slow in [false, true] {
            let threads = threads(slow);
            set_helpers(Some(threads.clone()));
            let mut helped = vec![0.0f32; g.batch * g.out_len()];
            conv2d_forward(&x, &w, add, &g, &mut helped);
            set_helpers(None);
            // 7 images: this thread keeps 2, the helpers take 3 and 2.
            assert_eq!(threads.images_sent.get(), 5);
            if slow {
                assert!(
                    threads.claimed.get() >= 2,
                    "claimed {}",
                    threads.claimed.get()
                );
            }
            let differ = alone
                .iter()
                .zip(&helped)
                .filter(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(
                differ.count(),
                0,
                "outputs that differ (slow helpers: {slow})"
            );
        }
    }
}
