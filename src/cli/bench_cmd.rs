//! `difflab bench`: throughput of the compute core, each figure the median of several timed
//! runs after a warm-up, on flex and (where there is an adapter) on wgpu, with the wgpu/flex
//! ratio measured in the same run.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::print_stdout;
use crate::data::mnist::Mnist;
use crate::data::toy2d::Toy2d;
use crate::device::{BackendKind, ComputeDevice, DeviceChoice, select_device};
use crate::diffusion::{
    NoiseSchedule, PredictionType, ScheduleConfig, Scheduler, SchedulerConfig, sample_seeded,
};
use crate::error::{DiffError, Result};
use crate::model::toy_mlp::ToyMlpConfig;
use crate::model::{UNetConfig, UNetDenoiser};
use crate::tensor_util::{tensor4, to_vec};
use crate::train::toy::{ToyTrainConfig, ToyTrainer};
use crate::train::unet::{ImageSet, TrainConfig, UNetTrainer};
use burn::module::Module;
use burn::tensor::Tensor;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchPart {
    /// Everything.
    All,
    /// The 2-D playground: MLP training steps/s and DDIM sampling points/s.
    Toy,
    /// The U-Net: training steps/s, DDIM-50 images/s, forward GFLOP/s against a matmul.
    Unet,
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
    /// Print one JSON object with the figures on the device `--device` picks (auto: the one the
    /// app would compute on) instead of a table.
    #[arg(long)]
    json: bool,
    /// Use burn's stock ops on flex instead of difflab's kernels (conv2d, GroupNorm + SiLU), to
    /// compare the two in one sitting.
    #[arg(long)]
    stock: bool,
}

/// One measured figure per device, under a stable key (the JSON output's).
struct Row {
    key: &'static str,
    what: &'static str,
    unit: &'static str,
    per_device: Vec<f64>,
}

/// Appends `v` to the row `key` (made on the first device) of `rows`.
fn push(rows: &mut Vec<Row>, key: &'static str, what: &'static str, unit: &'static str, v: f64) {
    match rows.iter_mut().find(|r| r.key == key) {
        Some(r) => r.per_device.push(v),
        None => rows.push(Row {
            key,
            what,
            unit,
            per_device: vec![v],
        }),
    }
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
            // Points are not images: no clipping.
            clip_sample: None,
            ..SchedulerConfig::ddim(schedule, PredictionType::Epsilon, 50, 0.0)
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
            key: "toy_train_steps_per_s",
            what: "toy MLP training (batch 256)",
            unit: "steps/s",
            per_device: train,
        },
        Row {
            key: "toy_ddim50_points_per_s",
            what: "toy DDIM-50 sampling (10,000 points)",
            unit: "points/s",
            per_device: sample,
        },
    ])
}

/// The reference U-Net the CPU speed comparison is stated for (base 32, multipliers [1, 2], the
/// rest default: about 0.47M parameters), as in `../shared/bench/torch_mirror.py`.
fn reference_unet() -> UNetConfig {
    UNetConfig::new().with_channel_mult(vec![1, 2])
}

/// The bundled digits with their labels (the shipped U-Net is class-conditional and trains on
/// them; the reference net ignores the labels).
fn training_data() -> Result<ImageSet> {
    let mnist = Mnist::embedded()?;
    ImageSet::new(&mnist.images(10_000), [1, 28, 28])?.with_labels(mnist.class_labels(10_000))
}

/// The U-Net: training steps per second (batch 64, MNIST) for the ~0.47M reference and the
/// shipped model; images per second of DDIM-50 sampling (batch 64, the shipped model); and the
/// reference's forward pass in GFLOP/s next to a 1024×1024 matmul's (the rough peak).
fn unet_rows(devices: &[ComputeDevice], runs: usize) -> Result<Vec<Row>> {
    let data = training_data()?;
    let (shipped, shipped_config) = crate::model::unet::shipped(&ComputeDevice::flex().device)?;
    let reference = reference_unet();
    let flops = reference.forward_flops();
    let mut rows: Vec<Row> = Vec::new();
    for d in devices {
        eprintln!("U-Net on {} …", d.label);
        let mut train_gflops = 0.0;
        for (i, config) in [reference.clone(), shipped_config.clone()]
            .into_iter()
            .enumerate()
        {
            let mut trainer = UNetTrainer::new(
                data.clone(),
                config,
                TrainConfig {
                    batch: 64,
                    ..TrainConfig::default()
                },
                &d.device,
            )?;
            let rate = median_rate(runs, || {
                trainer.train_step()?;
                trainer.train_step()?;
                Ok(2.0)
            })?;
            let (key, what) = if i == 0 {
                (
                    "unet_train_ref_steps_per_s",
                    "U-Net training, 0.47M reference, batch 64",
                )
            } else {
                (
                    "unet_train_shipped_steps_per_s",
                    "U-Net training, shipped model, batch 64",
                )
            };
            push(&mut rows, key, what, "steps/s", rate);
            if i == 0 {
                // A training step costs about three forward passes (forward, then the input
                // and the weight gradients).
                train_gflops = rate * 3.0 * 64.0 * flops / 1e9;
            }
        }
        push(
            &mut rows,
            "unet_train_ref_gflops",
            "U-Net training, 0.47M, as 3 × forward FLOPs",
            "GFLOP/s",
            train_gflops,
        );
        let model = UNetDenoiser {
            model: shipped.clone().to_device(&d.device),
            config: shipped_config.clone(),
        };
        let scheduler = Scheduler::new(SchedulerConfig::ddim(
            ScheduleConfig::default(),
            shipped_config.prediction,
            50,
            0.0,
        ))?;
        let cancel = AtomicBool::new(false);
        push(
            &mut rows,
            "unet_ddim50_shipped_images_per_s",
            "U-Net DDIM-50 sampling, shipped, batch 64",
            "images/s",
            median_rate(runs, || {
                let x = sample_seeded(&model, &scheduler, 3, 64, &cancel, &d.device, |_| {})?
                    .ok_or_else(|| DiffError::Backend("cancelled".into()))?;
                to_vec(x)?;
                Ok(64.0)
            })?,
        );
        let net = reference.init(&d.device)?;
        let x = tensor4(
            crate::diffusion::noise::gaussian(1, 0, 64 * 784),
            [64, 1, 28, 28],
            &d.device,
        );
        let ts: Vec<usize> = (0..64).map(|i| i * 15).collect();
        push(
            &mut rows,
            "unet_forward_ref_gflops",
            "U-Net forward, 0.47M reference, batch 64",
            "GFLOP/s",
            median_rate(runs, || {
                to_vec(net.forward(x.clone(), &ts))?;
                Ok(64.0 * flops / 1e9)
            })?,
        );
        // One of the U-Net's 3×3 convs alone (32 → 32 channels at 28 px, batch 64), forward,
        // and forward with both gradients (counted as 3 × the forward FLOPs).
        let conv_flops = 2.0 * f64::from(64 * 32 * 32 * 9 * 28 * 28) / 1e9;
        let ad = d.device.clone().autodiff();
        let conv = crate::model::unet::conv3(32, 32, 1, &ad);
        let xc = tensor4(
            crate::diffusion::noise::gaussian(4, 0, 64 * 32 * 784),
            [64, 32, 28, 28],
            &ad,
        );
        let conv_valid = conv.valid();
        let xv = xc.clone().inner();
        push(
            &mut rows,
            "conv3x3_fwd_gflops",
            "3×3 conv 32→32, 28 px, batch 64: forward",
            "GFLOP/s",
            median_rate(runs, || {
                to_vec(difflab_kernels::conv2d_module(&conv_valid, xv.clone()).sum())?;
                Ok(conv_flops)
            })?,
        );
        push(
            &mut rows,
            "conv3x3_fwd_bwd_gflops",
            "the same conv: forward + both gradients",
            "GFLOP/s",
            median_rate(runs, || {
                let x = xc.clone().require_grad();
                let grads = difflab_kernels::conv2d_module(&conv, x.clone())
                    .sum()
                    .backward();
                let gx = x
                    .grad(&grads)
                    .ok_or_else(|| DiffError::Backend("no input gradient".into()))?;
                let gw = conv
                    .weight
                    .grad(&grads)
                    .ok_or_else(|| DiffError::Backend("no weight gradient".into()))?;
                to_vec(gx.sum())?;
                to_vec(gw.sum())?;
                Ok(3.0 * conv_flops)
            })?,
        );
        let n = 1024;
        let a: Tensor<2> = crate::tensor_util::tensor2(
            crate::diffusion::noise::gaussian(2, 0, n * n),
            [n, n],
            &d.device,
        );
        push(
            &mut rows,
            "matmul_1024_gflops",
            "rough peak: 1024×1024 matmul",
            "GFLOP/s",
            median_rate(runs, || {
                to_vec(a.clone().matmul(a.clone()).sum())?;
                Ok(2.0 * (n * n * n) as f64 / 1e9)
            })?,
        );
    }
    Ok(rows)
}

pub(super) fn bench(a: BenchArgs, choice: Option<DeviceChoice>) -> Result<()> {
    if a.runs == 0 || a.runs > 100 {
        return Err(DiffError::invalid("--runs must be between 1 and 100"));
    }
    if a.stock {
        difflab_kernels::with_stock_ops(|| run(&a, choice))
    } else {
        run(&a, choice)
    }
}

fn run(a: &BenchArgs, choice: Option<DeviceChoice>) -> Result<()> {
    // JSON: one device, the one `--device` picks. Table: flex, and wgpu beside it.
    let devices = if a.json {
        vec![select_device(choice.unwrap_or_default())?]
    } else {
        devices(choice)
    };
    let mut rows = Vec::new();
    if matches!(a.only, BenchPart::All | BenchPart::Toy) {
        rows.extend(toy_rows(&devices, a.runs)?);
    }
    let mut unet_devices = devices.clone();
    if matches!(a.only, BenchPart::All | BenchPart::Unet) {
        // The U-Net on a CPU-type wgpu adapter (lavapipe) takes many minutes a figure: only
        // when asked for with --device wgpu.
        unet_devices.retain(|d| {
            let keep =
                d.backend == BackendKind::Flex || d.on_gpu || choice == Some(DeviceChoice::Wgpu);
            if !keep {
                eprintln!(
                    "U-Net figures on {} skipped: it is a CPU emulating a GPU \
                     (pass --device wgpu to run them anyway)",
                    d.label
                );
            }
            keep
        });
        rows.extend(unet_rows(&unet_devices, a.runs)?);
    }
    let kernels = if a.stock {
        "burn's stock ops"
    } else {
        "difflab's kernels"
    };
    if a.json {
        let mut obj = serde_json::Map::new();
        for r in &rows {
            if let Some(v) = r.per_device.first() {
                obj.insert(
                    r.key.into(),
                    serde_json::json!((v * 1000.0).round() / 1000.0),
                );
            }
        }
        obj.insert("device".into(), devices[0].label.clone().into());
        obj.insert("cpu_ops".into(), kernels.into());
        obj.insert("runs".into(), a.runs.into());
        return print_stdout(&format!("{}\n", serde_json::Value::Object(obj)));
    }
    let mut out = format!(
        "difflab bench: median of {} runs after a warm-up; flex runs {kernels}\n",
        a.runs
    );
    for (i, d) in devices.iter().enumerate() {
        out += &format!("  device {}: {}\n", i + 1, d.label);
    }
    for r in &rows {
        out += &format!("{:<34} {:<44}", r.key, r.what);
        for v in &r.per_device {
            out += &format!("  {v:>9.2} {:<8}", r.unit);
        }
        if let [flex, wgpu] = r.per_device[..] {
            out += &format!("  (wgpu/flex {:.2}×)", wgpu / flex);
        }
        out.push('\n');
    }
    print_stdout(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench trains the shipped U-Net (class-conditional) on its data: one real step.
    #[test]
    fn the_bench_can_train_the_shipped_unet_on_its_data() {
        let device = ComputeDevice::flex().device;
        let (_, config) = crate::model::unet::shipped(&device).expect("shipped");
        assert!(config.num_classes.is_some());
        let data = training_data().expect("data");
        let mut trainer = UNetTrainer::new(
            data,
            config,
            TrainConfig {
                batch: 4,
                ..TrainConfig::default()
            },
            &device,
        )
        .expect("trainer");
        let loss = trainer.train_step().expect("step");
        assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
    }
}
