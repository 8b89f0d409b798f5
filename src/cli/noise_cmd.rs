//! `difflab noise`: a forward-process filmstrip of any image.

use std::path::PathBuf;

use burn::tensor::Tensor;
use clap::Args;

use super::{ScheduleOpts, check_outputs, device_for, parse_t_list};
use crate::data::image_io::{ValueRange, batch_to_rgb, grid, grid_size, load_rgb, save_png};
use crate::device::DeviceChoice;
use crate::diffusion::{NoiseSchedule, initial_noise, q_sample};
use crate::error::{DiffError, Result};
use crate::tensor_util::{tensor4, to_vec};

/// Arguments of `difflab noise`.
#[derive(Debug, Args)]
pub struct NoiseArgs {
    /// A PNG or JPEG image.
    image: PathBuf,
    /// Timesteps to show, comma-separated (0 … T−1).
    #[arg(long = "t", default_value = "0,250,500,750,999")]
    t: String,
    #[command(flatten)]
    schedule: ScheduleOpts,
    /// Seed of the noise ε (one ε for every frame).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Downscale the image so neither side exceeds this.
    #[arg(long, default_value_t = 256)]
    max_size: u32,
    /// The filmstrip PNG to write.
    #[arg(short, long)]
    output: PathBuf,
}

/// The largest `--max-size` (a side, in pixels).
const MAX_SIDE: u32 = 4096;

/// The most frames a filmstrip shows.
const MAX_NOISE_FRAMES: usize = 100;

pub(super) fn noise(a: NoiseArgs, device: DeviceChoice) -> Result<()> {
    let schedule = NoiseSchedule::new(a.schedule.config())?;
    let ts = parse_t_list(&a.t)?;
    ts.iter().try_for_each(|t| schedule.check_t(*t))?;
    if a.max_size == 0 || a.max_size > MAX_SIDE {
        return Err(DiffError::invalid(format!(
            "--max-size must be between 1 and {MAX_SIDE}"
        )));
    }
    if ts.len() > MAX_NOISE_FRAMES {
        return Err(DiffError::invalid(format!(
            "--t lists {} timesteps: a filmstrip has at most {MAX_NOISE_FRAMES}",
            ts.len()
        )));
    }
    check_outputs(&[&a.output], &[&a.image])?;
    let img = load_rgb(&a.image, a.max_size)?;
    let device = device_for(device)?;
    let [c, h, w] = img.shape();
    let k = ts.len();
    grid_size(k, k, (w, h), 4, 1)?;
    // One x_0 and one ε, broadcast over the K frames.
    let x0 = tensor4(img.data, [1, c, h, w], &device.device).repeat_dim(0, k);
    let eps: Tensor<4> = initial_noise(a.seed, [1, c, h, w], &device.device).repeat_dim(0, k);
    let x_t = q_sample(&schedule, x0, &ts, eps)?;
    let frames = batch_to_rgb(&to_vec(x_t)?, [k, c, h, w], ValueRange::Unit)?;
    save_png(&grid(&frames, k, 4, 1), &a.output)?;
    eprintln!(
        "wrote {} ({} frames of {w}×{h}, t = {})",
        a.output.display(),
        k,
        a.t
    );
    Ok(())
}
