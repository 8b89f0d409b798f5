//! `difflab edit`: edit a real image with the U-Net: SDEdit, inpainting (RePaint) and DDIM
//! inversion (see src/diffusion/editing.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Tensor;
use clap::{Args, ValueEnum};
use image::DynamicImage;

use super::sample_cmd::load_unet;
use super::{check_outputs, device_for, print_stdout};
use crate::data::image_io::{ImageArray, ValueRange, chw_to_rgb, open_image, save_png};
use crate::device::DeviceChoice;
use crate::diffusion::editing::{ddim_decode, ddim_invert, edit_scheduler, inpaint, rmse, sdedit};
use crate::diffusion::{NoiseSchedule, ScheduleConfig};
use crate::error::{DiffError, Result};
use crate::model::Denoiser;
use crate::tensor_util::{tensor4, to_vec};

/// What `edit` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EditMode {
    /// SDEdit: noise the input to --t0 and denoise it (Meng et al. 2021).
    Sdedit,
    /// Fill in the white part of --mask, keeping the rest (RePaint, Lugmayr et al. 2022).
    Inpaint,
    /// DDIM inversion: the noise x_T that decodes to the input, and its reconstruction.
    Invert,
}

/// The sampler of `sdedit` and `inpaint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EditSampler {
    /// Ancestral sampling (Ho et al. 2020), σ² = β̃.
    Ddpm,
    /// DDIM with η = 0 (Song et al. 2020).
    Ddim,
}

/// Arguments of `difflab edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// sdedit, inpaint or invert.
    #[arg(value_enum)]
    mode: EditMode,
    /// The image to edit: a PNG of the model's size (28×28 for the shipped MNIST net; colour is
    /// converted to grey for a grey model). Another size is refused, not resized.
    #[arg(long)]
    input: PathBuf,
    /// inpaint: a PNG of the input's size, white where the model fills in, black where the
    /// input is kept (grey levels blend).
    #[arg(long)]
    mask: Option<PathBuf>,
    /// sdedit: how far to noise the input, 1 … T−1 (rounded down to the sampler's grid;
    /// default T/2).
    #[arg(long)]
    t0: Option<usize>,
    /// The sampler's N (for invert: the DDIM steps of the inversion and of the decoding).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// sdedit and inpaint: ddpm or ddim (trailing timesteps, x̂0 clipped to [−1, 1]).
    #[arg(long, value_enum)]
    sampler: Option<EditSampler>,
    /// The seed of every noise the edit draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// inpaint: RePaint's U, the passes per step (1 = no resampling).
    #[arg(long)]
    resample: Option<usize>,
    /// inpaint: RePaint's jump length (the steps gone back between passes; default 1).
    #[arg(long)]
    jump: Option<usize>,
    /// sdedit and inpaint: the digit to guide towards (a class-conditional U-Net, such as the
    /// shipped one); without it the model is asked for no digit.
    #[arg(long)]
    label: Option<usize>,
    /// Classifier-free guidance scale w ≥ 0 with --label (default 2): ε̃ = ε_∅ + w·(ε_c − ε_∅).
    #[arg(long, requires = "label", allow_negative_numbers = true)]
    guidance: Option<f64>,
    /// U-Net weights (SafeTensors from `difflab train`); default: the shipped MNIST model.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The folder the results go to (created if missing): result.png, and for invert
    /// noise.safetensors and reconstruction.png.
    #[arg(long)]
    out_dir: PathBuf,
}

/// Refuses flags that do not apply to the mode (rather than ignoring them) and values out of
/// range; T is the schedule's number of timesteps.
fn check_flags(a: &EditArgs, num_timesteps: usize) -> Result<()> {
    let refuse = |flag: &str, modes: &str| {
        Err(DiffError::invalid(format!(
            "{flag} applies to `edit {modes}` only"
        )))
    };
    if a.mode != EditMode::Inpaint {
        if a.mask.is_some() {
            return refuse("--mask", "inpaint");
        }
        if a.resample.is_some() {
            return refuse("--resample", "inpaint");
        }
        if a.jump.is_some() {
            return refuse("--jump", "inpaint");
        }
    }
    if a.mode != EditMode::Sdedit && a.t0.is_some() {
        return refuse("--t0", "sdedit");
    }
    if a.mode == EditMode::Invert && a.sampler.is_some() {
        return Err(DiffError::invalid(
            "--sampler: `edit invert` always runs deterministic DDIM (η = 0)",
        ));
    }
    if a.mode == EditMode::Invert && a.label.is_some() {
        return Err(DiffError::invalid(
            "--label: `edit invert` runs the unguided model (guidance is not invertible as is)",
        ));
    }
    if let Some(w) = a.guidance {
        crate::model::guidance::check_scale(w)?;
    }
    if a.mode == EditMode::Inpaint && a.mask.is_none() {
        return Err(DiffError::invalid("`edit inpaint` needs --mask"));
    }
    if a.steps == 0 || a.steps > num_timesteps {
        return Err(DiffError::invalid(format!(
            "--steps must be between 1 and {num_timesteps}"
        )));
    }
    if let Some(t0) = a.t0
        && !(1..num_timesteps).contains(&t0)
    {
        return Err(DiffError::invalid(format!(
            "--t0 {t0} is out of range: it must be between 1 and {}",
            num_timesteps - 1
        )));
    }
    if a.resample == Some(0) || a.resample > Some(crate::diffusion::editing::MAX_RESAMPLE) {
        return Err(DiffError::invalid(format!(
            "--resample must be between 1 and {}",
            crate::diffusion::editing::MAX_RESAMPLE
        )));
    }
    if let Some(j) = a.jump
        && (j == 0 || j > a.steps)
    {
        return Err(DiffError::invalid(format!(
            "--jump must be between 1 and --steps ({})",
            a.steps
        )));
    }
    if a.out_dir.exists() && !a.out_dir.is_dir() {
        return Err(DiffError::file(
            &a.out_dir,
            "is a file, not a folder (--out-dir)",
        ));
    }
    Ok(())
}

/// An image as [C, H, W] values in [−1, 1] for a model of `shape`: grey or colour as the model
/// takes it; another size than the model's is refused.
fn load_for_model(path: &Path, shape: [usize; 3], what: &str) -> Result<ImageArray> {
    let img: DynamicImage = open_image(path)?;
    let [c, h, w] = shape;
    if (img.width() as usize, img.height() as usize) != (w, h) {
        return Err(DiffError::file(
            path,
            format!(
                "is {}×{}, but the model works on {w}×{h} images ({what}; it is not resized)",
                img.width(),
                img.height()
            ),
        ));
    }
    match c {
        1 => Ok(ImageArray::from_luma(&img.to_luma8())),
        3 => Ok(ImageArray::from_rgb(&img.to_rgb8())),
        _ => Err(DiffError::invalid(format!(
            "the model takes {c} channels: only grey and colour images can be edited"
        ))),
    }
}

fn write_image(x: &Tensor<4>, shape: [usize; 3], path: &Path, range: ValueRange) -> Result<()> {
    let img = chw_to_rgb(&to_vec(x.clone())?, shape, range)?;
    save_png(&img, path)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

pub(super) fn edit(a: EditArgs, device: DeviceChoice) -> Result<()> {
    let schedule_config = ScheduleConfig::default();
    check_flags(&a, schedule_config.num_train_timesteps)?;
    // Every input is read and checked, and every output path, before any work or any write.
    let (result, noise, reconstruction) = (
        a.out_dir.join("result.png"),
        a.out_dir.join("noise.safetensors"),
        a.out_dir.join("reconstruction.png"),
    );
    let mut inputs: Vec<&Path> = vec![&a.input];
    inputs.extend(a.mask.as_deref());
    inputs.extend(a.weights.as_deref());
    let device = device_for(device)?;
    let unet = Arc::new(load_unet(
        a.weights.as_deref(),
        &schedule_config,
        &device.device,
    )?);
    let guided = match a.label {
        Some(label) => {
            let w = a.guidance.unwrap_or(super::sample_cmd::DEFAULT_GUIDANCE);
            Some(crate::model::Guided::new(unet.clone(), vec![label], w)?)
        }
        None => None,
    };
    let model: &dyn Denoiser = match &guided {
        Some(g) => g,
        None => unet.as_ref(),
    };
    let shape = model.sample_shape();
    let [c, h, w] = shape;
    let input = load_for_model(&a.input, shape, "--input")?;
    let mask = match &a.mask {
        Some(p) => {
            let m = load_for_model(p, [1, h, w], "--mask")?;
            // [−1, 1] back to [0, 1]: white (1) fills in, black (0) keeps.
            Some(m.data.iter().map(|v| (v + 1.0) / 2.0).collect::<Vec<f32>>())
        }
        None => None,
    };
    if a.out_dir.is_dir() {
        let outputs: Vec<&Path> = match a.mode {
            EditMode::Invert => vec![&result, &noise, &reconstruction],
            _ => vec![&result],
        };
        check_outputs(&outputs, &inputs)?;
    }
    let schedule = Arc::new(NoiseSchedule::new(schedule_config)?);
    let x0 = tensor4(input.data, [1, c, h, w], &device.device);
    let prediction = model.prediction_type();
    let sampler = a.sampler.unwrap_or(EditSampler::Ddim);
    // SDEdit's and inpainting's sampler (a guided model re-derives ε̂ from the clipped x̂0).
    let scheduler = || {
        edit_scheduler(
            &schedule,
            prediction,
            a.steps,
            sampler == EditSampler::Ddpm,
            guided.is_some(),
        )
    };
    let out = match a.mode {
        EditMode::Sdedit => {
            let scheduler = scheduler()?;
            let t0 = a.t0.unwrap_or(schedule_config.num_train_timesteps / 2);
            eprintln!("SDEdit from t0 = {t0}, {sampler:?}, {} steps", a.steps);
            sdedit(model, &scheduler, x0, t0, a.seed)?
        }
        EditMode::Inpaint => {
            let scheduler = scheduler()?;
            let mask = tensor4(mask.unwrap_or_default(), [1, 1, h, w], &device.device);
            let (u, j) = (a.resample.unwrap_or(1), a.jump.unwrap_or(1));
            eprintln!("RePaint: {sampler:?}, {} steps, U = {u}, jump {j}", a.steps);
            inpaint(model, &scheduler, x0, mask, a.seed, u, j)?
        }
        EditMode::Invert => {
            eprintln!("DDIM inversion, {} steps", a.steps);
            let x_t = ddim_invert(model, &schedule, x0.clone(), a.steps)?;
            let back = ddim_decode(model, &schedule, x_t.clone(), a.steps)?;
            let err = rmse(&x0, &back)?;
            std::fs::create_dir_all(&a.out_dir).map_err(|e| DiffError::file(&a.out_dir, e))?;
            let bytes = crate::data::tensor_file::f32_safetensors(
                "noise",
                &[1, c, h, w],
                &to_vec(x_t.clone())?,
            )?;
            crate::data::image_io::write_atomic(&noise, &bytes)?;
            eprintln!("wrote {}", noise.display());
            write_image(&back, shape, &reconstruction, ValueRange::Unit)?;
            // result.png shows the noise x_T, each image's own min..max to black..white.
            write_image(&x_t, shape, &result, ValueRange::Normalise)?;
            print_stdout(&format!("reconstruction RMSE {err:.6}\n"))?;
            return Ok(());
        }
    };
    std::fs::create_dir_all(&a.out_dir).map_err(|e| DiffError::file(&a.out_dir, e))?;
    write_image(&out, shape, &result, ValueRange::Unit)?;
    Ok(())
}
