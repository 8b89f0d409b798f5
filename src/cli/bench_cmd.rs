//! `difflab bench`: throughput of the compute core, each figure the median of several timed
//! runs after a warm-up, on flex and (where there is an adapter) on wgpu, with the wgpu/flex
//! ratio measured in the same run.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::print_stdout;
use crate::data::toy2d::Toy2d;
use crate::device::{ComputeDevice, DeviceChoice, select_device};
use crate::diffusion::{
    NoiseSchedule, PredictionType, SamplerKind, ScheduleConfig, Scheduler, SchedulerConfig,
    TimestepSpacing, sample_seeded,
};
use crate::error::{DiffError, Result};
use crate::model::toy_mlp::ToyMlpConfig;
use crate::train::toy::{ToyTrainConfig, ToyTrainer};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchPart {
    /// Everything.
    All,
    /// The 2-D playground: MLP training steps/s and DDIM sampling points/s.
    Toy,
}

/// Arguments of `difflab bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmarks.
    #[arg(long, value_enum, default_value_t = BenchPart::All)]
    only: BenchPart,
    /// Timed runs per figure (the median is printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// One measured figure per device.
struct Row {
    what: &'static str,
    unit: &'static str,
    per_device: Vec<f64>,
}

/// The median of `runs` timings of `f`, after one untimed warm-up call; `f` returns the work
/// done (steps, points), the result is work per second.
fn median_rate(runs: usize, mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    f()?;
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let work = f()?;
        rates.push(work / started.elapsed().as_secs_f64().max(1e-9));
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// The devices to compare: flex, and wgpu unless `--device cpu` (or no adapter).
fn devices(choice: Option<DeviceChoice>) -> Vec<ComputeDevice> {
    let mut v = vec![ComputeDevice::flex()];
    if choice != Some(DeviceChoice::Cpu) {
        match select_device(DeviceChoice::Wgpu) {
            Ok(d) => v.push(d),
            Err(e) => eprintln!("no wgpu figures: {e}"),
        }
    }
    v
}

/// The 2-D playground: MLP training steps per second (batch 256, the app's default), and
/// points sampled per second (DDIM, 50 steps, 10,000 points).
fn toy_rows(devices: &[ComputeDevice], runs: usize) -> Result<Vec<Row>> {
    let schedule = ScheduleConfig::default();
    let data = Toy2d::SwissRoll.sample(10_000, 0)?;
    let mut train = Vec::new();
    let mut sample = Vec::new();
    for d in devices {
        eprintln!("toy on {} …", d.label);
        let mut trainer = ToyTrainer::new(
            data.clone(),
            Arc::new(NoiseSchedule::new(schedule)?),
            &ToyMlpConfig::new(),
            ToyTrainConfig::default(),
            &d.device,
        )?;
        train.push(median_rate(runs, || {
            for _ in 0..50 {
                trainer.train_step()?;
            }
            Ok(50.0)
        })?);
        let model = trainer.model()?;
        let scheduler = Scheduler::new(SchedulerConfig {
            schedule,
            prediction_type: PredictionType::Epsilon,
            clip_sample: None,
            spacing: TimestepSpacing::Trailing,
            steps_offset: 0,
            num_inference_steps: 50,
            sampler: SamplerKind::Ddim {
                eta: 0.0,
                set_alpha_to_one: true,
            },
        })?;
        let cancel = AtomicBool::new(false);
        let n = 10_000;
        sample.push(median_rate(runs, || {
            sample_seeded(&model, &scheduler, 1, n, &cancel, &d.device, |_| {})?
                .ok_or_else(|| DiffError::Backend("cancelled".into()))?;
            Ok(n as f64)
        })?);
    }
    Ok(vec![
        Row {
            what: "toy MLP training (batch 256)",
            unit: "steps/s",
            per_device: train,
        },
        Row {
            what: "toy DDIM-50 sampling (10,000 points)",
            unit: "points/s",
            per_device: sample,
        },
    ])
}

pub(super) fn bench(a: BenchArgs, choice: Option<DeviceChoice>) -> Result<()> {
    if a.runs == 0 || a.runs > 100 {
        return Err(DiffError::invalid("--runs must be between 1 and 100"));
    }
    let devices = devices(choice);
    let mut rows = Vec::new();
    if matches!(a.only, BenchPart::All | BenchPart::Toy) {
        rows.extend(toy_rows(&devices, a.runs)?);
    }
    let mut out = format!("difflab bench: median of {} runs after a warm-up\n", a.runs);
    for (i, d) in devices.iter().enumerate() {
        out += &format!("  device {}: {}\n", i + 1, d.label);
    }
    for r in &rows {
        out += &format!("{:<40}", r.what);
        for v in &r.per_device {
            out += &format!("  {v:>12.1} {}", r.unit);
        }
        if let [flex, wgpu] = r.per_device[..] {
            out += &format!("  (wgpu/flex {:.2}×)", wgpu / flex);
        }
        out.push('\n');
    }
    print_stdout(&out)
}
