//! The forward panel's compute: a [`Job`] on a named worker thread that owns the tensors. The UI
//! never waits on a tensor; a newer request cancels the work in progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use web_time::Instant;

use burn::tensor::{Device, Tensor};

use crate::data::image_io::{ImageArray, ValueRange, batch_to_rgb, chw_to_rgb, grid, save_png};
use crate::diffusion::{ForwardChain, NoiseSchedule, ScheduleConfig, initial_noise, q_sample};
use crate::error::Result;
use crate::tensor_util::{sum_rows, tensor4, to_vec};

use super::thread::{Drive, Job, WorkerThread, yield_now};
use crate::app::render::{GpuTexture, TensorToTexture};

/// Where pictures are made: egui `ColorImage`s from CPU values, or wgpu textures written on the
/// GPU from the tensor's buffer.
pub enum Display {
    /// Read values back and build a `ColorImage` (flex, or any CPU-type adapter).
    Cpu,
    /// Write textures on the GPU with `shaders/tensor_to_rgba.wgsl`.
    Gpu(TensorToTexture),
}

/// The device the worker computes on, and how it shows results.
pub struct Compute {
    /// The burn device.
    pub device: Device,
    /// The display path.
    pub display: Display,
    /// e.g. "flex (CPU)".
    pub label: String,
}

/// One image ready for the UI.
pub enum Picture {
    /// CPU pixels.
    Cpu(egui::ColorImage),
    /// A texture on the shared wgpu device (Rgba8Unorm, TEXTURE_BINDING).
    Gpu(GpuTexture),
}

/// The bins of the pixel histogram: [−4, 4] in 64 bins.
pub const HIST_BINS: usize = 64;
/// The histogram's range.
pub const HIST_RANGE: (f32, f32) = (-4.0, 4.0);

/// What the forward panel asks for.
#[derive(Clone)]
pub struct ForwardRequest {
    /// Identifies x_0; a new id means a new image.
    pub image_id: u64,
    /// x_0, in [−1, 1].
    pub image: Arc<ImageArray>,
    /// The schedule.
    pub schedule: ScheduleConfig,
    /// Timeline position (paper numbering: 0 = x_0, T = fully noised).
    pub t: usize,
    /// Seed of ε and of the chain's noise.
    pub seed: u64,
    /// The filmstrip's timesteps (paper numbering).
    pub filmstrip: Vec<usize>,
}

impl ForwardRequest {
    fn same_strip(&self, other: &ForwardRequest) -> bool {
        self.image_id == other.image_id
            && self.schedule == other.schedule
            && self.seed == other.seed
            && self.filmstrip == other.filmstrip
    }
}

/// Commands for the worker.
pub enum Command {
    /// Compute x_t one-shot and by the chain, the histogram, and (if changed) the filmstrip.
    Forward(ForwardRequest),
    /// Write the filmstrip of this request as a PNG.
    ExportFilmstrip(ForwardRequest, std::path::PathBuf),
}

/// x_t at one t, computed one-shot.
pub struct ForwardFrame {
    /// The request's t.
    pub t: usize,
    /// x_0.
    pub x0: Picture,
    /// x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε.
    pub x_t: Picture,
    /// Pixel counts of x_t over [`HIST_RANGE`] in [`HIST_BINS`] bins.
    pub histogram: Vec<f32>,
    /// Wall time of this update.
    pub update_ms: f64,
}

/// Events back to the UI.
pub enum Event {
    /// The one-shot x_t is ready.
    Forward(ForwardFrame),
    /// The step-by-step chain reached t.
    Chain {
        /// Its t.
        t: usize,
        /// x_t from the Markov chain.
        picture: Picture,
        /// Wall time of the walk.
        update_ms: f64,
    },
    /// The filmstrip (timesteps and pictures).
    Filmstrip(Vec<(usize, Picture)>),
    /// Something was written.
    Saved(String),
    /// A command failed; the message is for a banner.
    Failed(String),
}

/// The forward panel's worker thread ("difflab-worker").
pub type Worker = WorkerThread<ForwardJob>;

/// Starts the forward panel's worker.
pub fn spawn_forward_worker(compute: Compute, ctx: egui::Context, drive: Drive) -> Result<Worker> {
    WorkerThread::start(
        "difflab-worker",
        ForwardJob {
            compute,
            cache: Cache::default(),
        },
        ctx,
        drive,
    )
}

#[derive(Default)]
struct Cache {
    image_id: Option<u64>,
    x0: Option<Tensor<4>>,
    eps_key: Option<(u64, [usize; 4])>,
    eps: Option<Tensor<4>>,
    schedule: Option<Arc<NoiseSchedule>>,
    chain_key: Option<(u64, ScheduleConfig, u64)>,
    chain: Option<ForwardChain>,
    strip_of: Option<ForwardRequest>,
}

/// The forward panel's work: x_t one-shot and by the chain, the filmstrip, exports.
pub struct ForwardJob {
    compute: Compute,
    cache: Cache,
}

impl Job for ForwardJob {
    type Command = Command;
    type Event = Event;

    fn supersedable(cmd: &Command) -> bool {
        matches!(cmd, Command::Forward(_))
    }

    async fn handle(&mut self, cmd: Command, cancel: &AtomicBool, send: &dyn Fn(Event)) {
        let result = match cmd {
            Command::Forward(req) => self.forward(&req, cancel, send).await,
            Command::ExportFilmstrip(req, path) => self.export_strip(&req, &path, send),
        };
        if let Err(e) = result {
            send(Event::Failed(e.to_string()));
        }
    }
}

impl ForwardJob {
    fn schedule(&mut self, config: ScheduleConfig) -> Result<Arc<NoiseSchedule>> {
        match &self.cache.schedule {
            Some(s) if s.config == config => Ok(s.clone()),
            _ => {
                let s = Arc::new(NoiseSchedule::new(config)?);
                self.cache.schedule = Some(s.clone());
                Ok(s)
            }
        }
    }

    fn x0(&mut self, req: &ForwardRequest) -> Tensor<4> {
        if self.cache.image_id != Some(req.image_id) || self.cache.x0.is_none() {
            let img = &req.image;
            let [c, h, w] = img.shape();
            self.cache.x0 = Some(tensor4(
                img.data.clone(),
                [1, c, h, w],
                &self.compute.device,
            ));
            self.cache.image_id = Some(req.image_id);
        }
        self.cache.x0.clone().expect("set above")
    }

    fn eps(&mut self, seed: u64, shape: [usize; 4]) -> Tensor<4> {
        if self.cache.eps_key != Some((seed, shape)) || self.cache.eps.is_none() {
            self.cache.eps = Some(initial_noise(seed, shape, &self.compute.device));
            self.cache.eps_key = Some((seed, shape));
        }
        self.cache.eps.clone().expect("set above")
    }

    /// x_t in the paper's numbering: x_0 itself at t = 0, else q_sample at timestep t − 1.
    fn one_shot(&mut self, req: &ForwardRequest, t: usize) -> Result<Tensor<4>> {
        let schedule = self.schedule(req.schedule)?;
        let x0 = self.x0(req);
        if t == 0 {
            return Ok(x0);
        }
        let eps = self.eps(req.seed, x0.dims());
        q_sample(&schedule, x0, &[t - 1], eps)
    }

    fn picture(&self, x: &Tensor<4>) -> Result<Picture> {
        match &self.compute.display {
            Display::Gpu(texturer) => Ok(Picture::Gpu(texturer.render(x, 0, -1.0, 1.0)?)),
            Display::Cpu => {
                let [_, c, h, w] = x.dims();
                let values = to_vec(x.clone())?;
                Ok(Picture::Cpu(color_image(&values, [c, h, w])?))
            }
        }
    }

    fn histogram(&self, x: &Tensor<4>) -> Result<Vec<f32>> {
        let (lo, hi) = HIST_RANGE;
        let width = (hi - lo) / HIST_BINS as f32;
        match self.compute.display {
            Display::Cpu => {
                let mut counts = vec![0.0f32; HIST_BINS];
                for v in to_vec(x.clone())? {
                    if (lo..hi).contains(&v) {
                        counts[(((v - lo) / width) as usize).min(HIST_BINS - 1)] += 1.0;
                    }
                }
                Ok(counts)
            }
            Display::Gpu(_) => {
                // On the device: count values ≥ each bin edge, then difference. Only the 65
                // counts come back, never the image.
                let n = x.dims().iter().product::<usize>();
                let edges: Vec<f32> = (0..=HIST_BINS).map(|k| lo + k as f32 * width).collect();
                let edges = Tensor::<2>::from_data(
                    burn::tensor::TensorData::new(edges, [1, HIST_BINS + 1]),
                    &self.compute.device,
                );
                let flat: Tensor<2> = x.clone().reshape([n, 1]);
                let at_least = sum_rows(flat.greater_equal(edges).float());
                let counts = to_vec(at_least)?;
                Ok(counts.windows(2).map(|p| p[0] - p[1]).collect())
            }
        }
    }

    async fn forward(
        &mut self,
        req: &ForwardRequest,
        cancel: &AtomicBool,
        send: &dyn Fn(Event),
    ) -> Result<()> {
        let started = Instant::now();
        let t_max = req.schedule.num_train_timesteps;
        let t = req.t.min(t_max);
        let x0 = self.x0(req);
        let x_t = self.one_shot(req, t)?;
        let frame = ForwardFrame {
            t,
            x0: self.picture(&x0)?,
            x_t: self.picture(&x_t)?,
            histogram: self.histogram(&x_t)?,
            update_ms: started.elapsed().as_secs_f64() * 1e3,
        };
        send(Event::Forward(frame));
        yield_now().await;

        if self
            .cache
            .strip_of
            .as_ref()
            .is_none_or(|s| !s.same_strip(req))
        {
            let mut strip = Vec::with_capacity(req.filmstrip.len());
            for &ts in &req.filmstrip {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let x = self.one_shot(req, ts.min(t_max))?;
                strip.push((ts, self.picture(&x)?));
                yield_now().await;
            }
            send(Event::Filmstrip(strip));
            self.cache.strip_of = Some(req.clone());
        }

        // The Markov chain, walked from its nearest checkpoint; cancelled by a newer request.
        let started = Instant::now();
        let key = (req.image_id, req.schedule, req.seed);
        if self.cache.chain_key != Some(key) || self.cache.chain.is_none() {
            let schedule = self.schedule(req.schedule)?;
            self.cache.chain = Some(ForwardChain::new(schedule, x0, req.seed));
            self.cache.chain_key = Some(key);
        }
        let chain = self.cache.chain.as_mut().expect("set above");
        if let Some(x) = chain.state_after(t, cancel)? {
            let picture = self.picture(&x)?;
            send(Event::Chain {
                t,
                picture,
                update_ms: started.elapsed().as_secs_f64() * 1e3,
            });
        }
        Ok(())
    }

    fn export_strip(
        &mut self,
        req: &ForwardRequest,
        path: &std::path::Path,
        send: &dyn Fn(Event),
    ) -> Result<()> {
        let mut frames = Vec::new();
        for &ts in &req.filmstrip {
            let x = self.one_shot(req, ts.min(req.schedule.num_train_timesteps))?;
            let [b, c, h, w] = x.dims();
            frames.extend(batch_to_rgb(&to_vec(x)?, [b, c, h, w], ValueRange::Unit)?);
        }
        save_png(&grid(&frames, frames.len(), 4, 1), path)?;
        send(Event::Saved(format!("wrote {}", path.display())));
        Ok(())
    }
}

/// CHW values in [−1, 1] as an egui image.
pub fn color_image(values: &[f32], shape: [usize; 3]) -> Result<egui::ColorImage> {
    let rgb = chw_to_rgb(values, shape, ValueRange::Unit)?;
    Ok(egui::ColorImage::from_rgb(
        [rgb.width() as usize, rgb.height() as usize],
        rgb.as_raw(),
    ))
}
