//! The headless command line: `difflab schedule | timesteps | noise | sample`.
//!
//! Every command calls into the same core as the app. Errors come back as [`DiffError`]; the
//! binary prints them on one line and exits with 2 (bad input) or 1 (backend failure).

mod average_cmd;
mod bench_cmd;
mod edit_cmd;
mod eval_cmd;
mod interpolate_cmd;
mod noise_cmd;
mod sample_cmd;
mod schedule_cmd;
mod toy_cmd;
mod train_cmd;
mod values;

use clap::{Args, Parser, Subcommand};

use crate::device::{ComputeDevice, DeviceChoice, select_device};
use crate::diffusion::{BetaSchedule, ScheduleConfig};
use crate::error::{DiffError, Result};

pub use sample_cmd::{DataChoice, ModelChoice, SamplerChoice};

/// Diffusion Lab: see how diffusion models work.
#[derive(Debug, Parser)]
#[command(name = "difflab", version, about, long_about = None)]
pub struct Cli {
    /// Where the tensors live: auto (wgpu on a real GPU, else CPU), wgpu, or cpu (burn's flex).
    /// [default: auto; the app remembers its last choice]
    #[arg(long, global = true, value_enum)]
    pub device: Option<DeviceChoice>,

    /// The command; none opens the app.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the desktop app (the default with no command).
    Gui(GuiArgs),
    /// Print a noise schedule's curves (β, ᾱ, √ᾱ, √(1−ᾱ), β̃, log SNR) as JSON or CSV.
    Schedule(schedule_cmd::ScheduleArgs),
    /// Print the timesteps a sampler with N steps visits, as a JSON array.
    Timesteps(schedule_cmd::TimestepsArgs),
    /// Write a forward-process filmstrip x_t of an image at several t (same ε for all).
    Noise(noise_cmd::NoiseArgs),
    /// Sample images with DDPM, DDIM or a solver after DDIM (DPM-Solver++, Euler, Heun, UniPC, …).
    Sample(sample_cmd::SampleArgs),
    /// Decode blends (slerp, lerp) of two seeds' noises with deterministic DDIM.
    Interpolate(interpolate_cmd::InterpolateArgs),
    /// Edit an image with the U-Net: SDEdit, inpainting (RePaint) or DDIM inversion.
    Edit(edit_cmd::EditArgs),
    /// Train the 2-D MLP on a toy distribution, sample it and plot.
    Toy(toy_cmd::ToyArgs),
    /// Train the U-Net on MNIST or a folder of images (checkpoints, --resume, loss.csv).
    Train(train_cmd::TrainArgs),
    /// Judge a U-Net's digits: classifier confidence, class histogram, Fréchet distance.
    Eval(eval_cmd::EvalArgs),
    /// Average the weights of U-Nets fine-tuned from one start (a model soup).
    Average(average_cmd::AverageArgs),
    /// Measure throughput (median of several runs) on flex and wgpu.
    Bench(bench_cmd::BenchArgs),
}

/// Arguments of `difflab gui`.
#[derive(Debug, Clone, Args)]
pub struct GuiArgs {
    /// Start from the default settings instead of the saved ones.
    #[arg(long)]
    pub fresh: bool,
    /// Sample with this U-Net weights file (from `difflab train` or `difflab average`; grey or
    /// colour images up to 128×128) instead of the shipped one.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<std::path::PathBuf>,
}

/// The schedule options shared by several commands.
#[derive(Debug, Clone, Args)]
pub struct ScheduleOpts {
    /// The β schedule.
    #[arg(long, value_enum, default_value_t = BetaSchedule::Linear)]
    pub schedule: BetaSchedule,
    /// T, the number of diffusion timesteps.
    #[arg(long = "timesteps", default_value_t = 1000)]
    pub num_timesteps: usize,
    /// β at t = 1 (default 0.0001, as DDPM; ignored by cosine).
    #[arg(long, default_value_t = 1e-4)]
    pub beta_start: f64,
    /// β at t = T (default 0.02, as DDPM; ignored by cosine).
    #[arg(long, default_value_t = 0.02)]
    pub beta_end: f64,
}

impl ScheduleOpts {
    /// The core config.
    pub fn config(&self) -> ScheduleConfig {
        ScheduleConfig {
            kind: self.schedule,
            num_train_timesteps: self.num_timesteps,
            beta_start: self.beta_start,
            beta_end: self.beta_end,
        }
    }
}

/// Parses "0,250,500" into timesteps.
pub fn parse_t_list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|p| {
            p.trim().parse::<usize>().map_err(|_| {
                DiffError::invalid(format!(
                    "'{p}' in --t is not a timestep (a whole number ≥ 0)"
                ))
            })
        })
        .collect()
}

/// Chooses the device and says which one runs.
pub fn device_for(choice: DeviceChoice) -> Result<ComputeDevice> {
    let device = select_device(choice)?;
    eprintln!("difflab: computing on {}", device.label);
    Ok(device)
}

/// Makes sure an output path can be written before any work starts (a clear error, rather than
/// a failed write after minutes of sampling): see [`check_outputs`].
pub fn check_output(path: &std::path::Path) -> Result<()> {
    check_outputs(&[path], &[])
}

/// The paths among optional ones that were given.
pub fn given<'a>(paths: &[&'a Option<std::path::PathBuf>]) -> Vec<&'a std::path::Path> {
    paths.iter().filter_map(|p| p.as_deref()).collect()
}

/// Checks a command's output paths before it does any work, so that a refused run has written
/// nothing and nothing the user has is lost: each output's folder exists, it is not a folder
/// or a read-only file, no two outputs are the same file, and no output is one of the
/// command's `inputs` (an image, a weights file) or an existing file inside an input folder
/// (a data folder).
pub fn check_outputs(outputs: &[&std::path::Path], inputs: &[&std::path::Path]) -> Result<()> {
    use std::path::Path;
    let parent = |p: &Path| -> std::path::PathBuf {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    // The file a path names: symbolic links (dangling ones too) and `..` resolved, for paths
    // that do not exist yet through their folder.
    let identity = |p: &Path| {
        let p = crate::data::image_io::link_target(p).ok()?;
        std::fs::canonicalize(&p)
            .ok()
            .or_else(|| Some(std::fs::canonicalize(parent(&p)).ok()?.join(p.file_name()?)))
    };
    let mut seen: std::collections::HashMap<std::path::PathBuf, &Path> =
        std::collections::HashMap::new();
    for &out in outputs {
        crate::data::image_io::link_target(out)?;
        if !parent(out).is_dir() {
            return Err(DiffError::file(out, "its folder does not exist"));
        }
        if out.is_dir() {
            return Err(DiffError::file(out, "is a folder, not a file"));
        }
        if std::fs::metadata(out).is_ok_and(|m| m.is_file() && m.permissions().readonly()) {
            return Err(DiffError::file(out, "is read-only: it is not replaced"));
        }
        let Some(id) = identity(out) else { continue };
        if let Some(first) = seen.get(&id) {
            return Err(DiffError::invalid(format!(
                "{} and {} are the same file: give each output its own path",
                first.display(),
                out.display()
            )));
        }
        for &input in inputs {
            let Some(input_id) = identity(input) else {
                continue;
            };
            if input_id == id {
                return Err(DiffError::file(
                    out,
                    format!(
                        "is also the input {}: writing it would destroy it; choose another output",
                        input.display()
                    ),
                ));
            }
            if input.is_dir() && out.exists() && id.starts_with(&input_id) {
                return Err(DiffError::file(
                    out,
                    format!(
                        "is a file of the input folder {}: choose an output outside it",
                        input.display()
                    ),
                ));
            }
        }
        seen.insert(id, out);
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) ends quietly rather than as an error.
pub fn print_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(DiffError::Backend(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// What the binary was asked to do: open the app, or run one command.
#[derive(Debug)]
pub enum Launch {
    /// Open the desktop app (no command, or `difflab gui`).
    App {
        /// `--device`, if given.
        device: Option<DeviceChoice>,
        /// `--fresh`: start from the default settings.
        fresh: bool,
        /// `--weights`: the U-Net weights file to sample with.
        weights: Option<std::path::PathBuf>,
    },
    /// Run a command without a window.
    Command {
        /// `--device`, if given.
        device: Option<DeviceChoice>,
        /// The command (boxed: it is far larger than the other variant).
        command: Box<Command>,
    },
}

impl Cli {
    /// Parses a command line as [`Parser::try_parse_from`] does, and also records which flags
    /// were typed rather than left at their defaults, where a command needs to know (`train
    /// --resume` names the typed options it ignores).
    pub fn parse_from<I, T>(args: I) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let command = Self::command();
        let matches = command.clone().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        if let Some((name, sub)) = matches.subcommand()
            && let Some(spec) = command.find_subcommand(name)
        {
            match &mut cli.command {
                Some(Command::Train(a)) => a.typed = typed_flags(sub, spec),
                Some(Command::Sample(a)) => a.typed = typed_flags(sub, spec),
                Some(Command::Interpolate(a)) => a.typed = typed_flags(sub, spec),
                _ => {}
            }
        }
        Ok(cli)
    }

    /// Splits the parsed line into "open the app" or "run this command"; `main` opens the app,
    /// so the command line never depends on it.
    pub fn launch(self) -> Launch {
        match self.command {
            None => Launch::App {
                device: self.device,
                fresh: false,
                weights: None,
            },
            Some(Command::Gui(a)) => Launch::App {
                device: self.device,
                fresh: a.fresh,
                weights: a.weights,
            },
            Some(command) => Launch::Command {
                device: self.device,
                command: Box::new(command),
            },
        }
    }
}

/// The long flags (`--batch`) of `command` that `matches` got from the command line, not from
/// their defaults.
fn typed_flags(
    matches: &clap::ArgMatches,
    command: &clap::Command,
) -> std::collections::BTreeSet<String> {
    command
        .get_arguments()
        .filter(|arg| {
            matches.value_source(arg.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
        .collect()
}

/// clap's own errors (an unknown flag, a value not among the choices) in one line, like every
/// other bad input: clap prints the error, then a tip, the usage and a pointer to `--help` on
/// lines of their own. The first line is kept, the tip and the choices are folded into it, the
/// usage and the pointer are dropped; `rendered` is clap's plain text (`Error::render`).
pub fn clap_error_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines
        .next()
        .unwrap_or("error: a bad command line (see --help)");
    let extra: Vec<&str> = lines
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("tip: ").unwrap_or(l))
        .map(|l| l.trim_start_matches('[').trim_end_matches(']'))
        .collect();
    if extra.is_empty() {
        format!("{first} (see --help)")
    } else if first.ends_with(':') {
        // "the following required arguments were not provided:" and a line per argument.
        format!("{first} {}", extra.join(", "))
    } else {
        format!("{first} ({})", extra.join("; "))
    }
}

/// Runs one command (every command but `gui`, which [`Cli::launch`] routes to the app).
pub fn run(cli_device: Option<DeviceChoice>, command: Command) -> Result<()> {
    let device = cli_device.unwrap_or_default();
    match command {
        Command::Gui(_) => Err(DiffError::invalid(
            "`difflab gui` opens the app: it is not a headless command",
        )),
        Command::Schedule(a) => schedule_cmd::schedule(a),
        Command::Timesteps(a) => schedule_cmd::timesteps_cmd(a),
        Command::Noise(a) => noise_cmd::noise(a, device),
        Command::Sample(a) => sample_cmd::sample(a, device),
        Command::Interpolate(a) => interpolate_cmd::interpolate(a, device),
        Command::Edit(a) => edit_cmd::edit(a, device),
        Command::Toy(a) => toy_cmd::toy(a, device),
        Command::Train(a) => train_cmd::train(a, device),
        Command::Eval(a) => eval_cmd::eval(a, device),
        Command::Average(a) => average_cmd::average(a),
        Command::Bench(a) => bench_cmd::bench(a, cli_device),
    }
}
