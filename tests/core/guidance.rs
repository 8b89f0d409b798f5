//! Class-conditional U-Nets and classifier-free guidance: the guidance algebra, the batched 2B
//! pass, label dropout, the weights file's training record, old files, and the CLI.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::{Device, Tensor};
use difflab::diffusion::{PredictionType, ScheduleConfig, sample_seeded};
use difflab::error::Result;
use difflab::model::guidance::{ConditionalDenoiser, Guided, guided_parts};
use difflab::model::unet::{TrainingRecord, load_safetensors, read_config, read_training_record};
use difflab::model::{Denoiser, UNetConfig, UNetDenoiser};
use difflab::tensor_util::{tensor4, to_vec};
use difflab::train::unet::{ImageSet, TrainConfig, UNetTrainer, indices_by_class};

/// A stub whose output is x·(label + 1) + 0.25·t: easy to predict for any label, ∅ = 3.
struct Stub;

impl Denoiser for Stub {
    fn prediction_type(&self) -> PredictionType {
        PredictionType::Epsilon
    }
    fn sample_shape(&self) -> [usize; 3] {
        [1, 2, 2]
    }
    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        let labels = vec![3; timesteps.len()];
        self.forward_labels(x_t, timesteps, &labels)
    }
    fn name(&self) -> String {
        "stub".into()
    }
}

impl ConditionalDenoiser for Stub {
    fn num_classes(&self) -> Option<usize> {
        Some(3)
    }
    fn forward_labels(&self, x_t: Tensor<4>, ts: &[usize], labels: &[usize]) -> Result<Tensor<4>> {
        let dims = x_t.dims();
        let v = to_vec(x_t.clone())?;
        let per = v.len() / dims[0];
        let out: Vec<f32> = v
            .iter()
            .enumerate()
            .map(|(i, x)| x * (labels[i / per] as f32 + 1.0) + 0.25 * ts[i / per] as f32)
            .collect();
        Ok(tensor4(out, dims, &x_t.device()))
    }
}

fn input(device: &Device) -> Tensor<4> {
    tensor4(
        vec![0.5, -1.0, 2.0, 0.125, 1.5, -0.75, 0.3, 0.9],
        [2, 1, 2, 2],
        device,
    )
}

#[test]
fn guidance_at_0_and_1_gives_the_unconditional_and_conditional_outputs_exactly() {
    let device = Device::flex();
    let stub = Arc::new(Stub);
    let ts = [10, 20];
    let uncond = to_vec(stub.forward(input(&device), &ts).unwrap()).unwrap();
    let cond = to_vec(stub.forward_labels(input(&device), &ts, &[1, 2]).unwrap()).unwrap();
    for (w, expected) in [(0.0, &uncond), (1.0, &cond)] {
        // Through the sampler-facing Denoiser and through the one-pass 2B parts.
        let g = Guided::new(stub.clone(), vec![1, 2], w).unwrap();
        assert_eq!(
            &to_vec(g.forward(input(&device), &ts).unwrap()).unwrap(),
            expected
        );
        let p = guided_parts(stub.as_ref(), input(&device), &ts, &[1, 2], w).unwrap();
        assert_eq!(&to_vec(p.guided).unwrap(), expected, "w = {w}");
        assert_eq!(to_vec(p.uncond).unwrap(), uncond);
        assert_eq!(to_vec(p.cond).unwrap(), cond);
    }
    // w = 3: ε_∅ + 3·(ε_c − ε_∅).
    let g = Guided::new(stub, vec![1, 2], 3.0).unwrap();
    let out = to_vec(g.forward(input(&device), &ts).unwrap()).unwrap();
    for ((o, u), c) in out.iter().zip(&uncond).zip(&cond) {
        assert!(
            (o - (u + 3.0 * (c - u))).abs() < 1e-5,
            "{o} vs {}",
            u + 3.0 * (c - u)
        );
    }
}

#[test]
fn guidance_refuses_bad_labels_and_scales() {
    let stub = Arc::new(Stub);
    assert!(
        Guided::new(stub.clone(), vec![3], 1.0).is_err(),
        "∅ is not a label to ask for"
    );
    assert!(Guided::new(stub.clone(), vec![0], -0.5).is_err());
    assert!(Guided::new(stub.clone(), vec![0], f64::NAN).is_err());
    assert!(Guided::new(stub.clone(), vec![0], f64::INFINITY).is_err());
    assert!(Guided::new(stub, vec![], 1.0).is_err());
}

fn tiny_conditional() -> UNetConfig {
    crate::common::tiny_unet().with_num_classes(Some(3))
}

#[test]
fn the_batched_2b_pass_equals_two_separate_passes() {
    let device = Device::flex();
    let config = tiny_conditional();
    let model = config.init_seeded(&device, 11).unwrap();
    let m = Arc::new(UNetDenoiser {
        model: model.clone(),
        config,
    });
    let x: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
    let x = tensor4(x, [2, 1, 8, 8], &device);
    let ts = [7, 700];
    let parts = guided_parts(m.as_ref(), x.clone(), &ts, &[2, 0], 2.5).unwrap();
    let cond = to_vec(model.forward_labels(x.clone(), &ts, Some(&[2, 0]))).unwrap();
    let uncond = to_vec(model.forward(x, &ts)).unwrap();
    let d = crate::common::max_abs_diff(&to_vec(parts.cond).unwrap(), &cond);
    assert!(d < 1e-5, "conditional half differs by {d}");
    let d = crate::common::max_abs_diff(&to_vec(parts.uncond).unwrap(), &uncond);
    assert!(d < 1e-5, "unconditional half differs by {d}");
    // The labels matter: another label gives another output.
    let other = to_vec(model.forward_labels(input8(&device), &ts, Some(&[1, 1]))).unwrap();
    let same = to_vec(model.forward_labels(input8(&device), &ts, Some(&[2, 0]))).unwrap();
    assert!(crate::common::max_abs_diff(&other, &same) > 1e-4);
}

fn input8(device: &Device) -> Tensor<4> {
    tensor4(
        (0..128).map(|i| (i as f32 * 0.37).sin()).collect(),
        [2, 1, 8, 8],
        device,
    )
}

fn labelled_images() -> ImageSet {
    let images: Vec<Vec<f32>> = (0..30)
        .map(|k| {
            (0..64)
                .map(|i| if (i + k) % 5 == 0 { 1.0 } else { -1.0 })
                .collect()
        })
        .collect();
    ImageSet::new(&images, [1, 8, 8])
        .unwrap()
        .with_labels((0..30).map(|k| k % 3).collect())
        .unwrap()
}

#[test]
fn label_dropout_drops_about_a_tenth_of_the_labels() {
    let config = TrainConfig {
        batch: 100,
        ..TrainConfig::default()
    };
    let t = UNetTrainer::new(
        labelled_images(),
        tiny_conditional(),
        config,
        &Device::flex(),
    )
    .unwrap();
    let idx: Vec<usize> = (0..100).map(|i| i % 30).collect();
    let mut dropped = 0;
    let mut kept_right = true;
    for k in 0..100 {
        let labels = t.labels_of(k, &idx).expect("a conditional run has labels");
        for (&l, &i) in labels.iter().zip(&idx) {
            if l == 3 {
                dropped += 1;
            } else {
                kept_right &= l == i % 3;
            }
        }
    }
    let fraction = f64::from(dropped) / 10_000.0;
    assert!((fraction - 0.1).abs() <= 0.01, "∅ fraction {fraction}");
    assert!(kept_right, "kept labels are the images' own");
    // Deterministic in (seed, k).
    assert_eq!(t.labels_of(5, &idx), t.labels_of(5, &idx));
}

/// The fraction of step k's images (k < 100) in each of 3 classes.
fn class_shares(t: &UNetTrainer, labels: &[usize]) -> [f64; 3] {
    let mut counts = [0usize; 3];
    for k in 0..100 {
        for i in t.batch_of(k).0 {
            counts[labels[i]] += 1;
        }
    }
    counts.map(|c| c as f64 / 10_000.0)
}

#[test]
fn balanced_classes_draw_every_class_equally_often() {
    // 40 images: 32 of class 0, 6 of class 1, 2 of class 2.
    let labels: Vec<usize> = (0..40)
        .map(|i| match i % 20 {
            0..16 => 0,
            16..19 => 1,
            _ => 2,
        })
        .collect();
    let images = ImageSet::new(&vec![vec![0.0; 64]; 40], [1, 8, 8])
        .unwrap()
        .with_labels(labels.clone())
        .unwrap();
    let config = |balance_classes| TrainConfig {
        batch: 100,
        balance_classes,
        ..TrainConfig::default()
    };
    let device = Device::flex();
    let plain =
        UNetTrainer::new(images.clone(), tiny_conditional(), config(false), &device).unwrap();
    let shares = class_shares(&plain, &labels);
    assert!(
        (shares[0] - 0.8).abs() < 0.02,
        "data proportions {shares:?}"
    );
    let balanced = UNetTrainer::new(images, tiny_conditional(), config(true), &device).unwrap();
    let shares = class_shares(&balanced, &labels);
    for s in shares {
        assert!((s - 1.0 / 3.0).abs() < 0.02, "balanced {shares:?}");
    }
    // Every image of the rarest class is drawn, and the draws depend on (seed, k) alone.
    let rare: std::collections::BTreeSet<usize> = (0..100)
        .flat_map(|k| balanced.batch_of(k).0)
        .filter(|&i| labels[i] == 2)
        .collect();
    assert_eq!(rare.into_iter().collect::<Vec<_>>(), vec![19, 39]);
    assert_eq!(balanced.batch_of(7), balanced.batch_of(7));
}

#[test]
fn indices_by_class_skips_absent_classes() {
    assert_eq!(
        indices_by_class(&[2, 0, 2, 5]),
        vec![vec![1], vec![0, 2], vec![3]]
    );
}

#[test]
fn balancing_needs_a_conditional_net() {
    let config = TrainConfig {
        balance_classes: true,
        ..TrainConfig::default()
    };
    let unconditional = UNetConfig {
        num_classes: None,
        ..tiny_conditional()
    };
    let err = UNetTrainer::new(labelled_images(), unconditional, config, &Device::flex())
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("--balance-classes needs --classes"),
        "{err}"
    );
}

#[test]
fn a_conditional_run_needs_labels_in_range() {
    let images = ImageSet::new(&vec![vec![0.0; 64]; 4], [1, 8, 8]).unwrap();
    let device = Device::flex();
    let c = TrainConfig::default();
    assert!(UNetTrainer::new(images.clone(), tiny_conditional(), c.clone(), &device).is_err());
    let bad = images.with_labels(vec![0, 1, 2, 3]).unwrap();
    assert!(UNetTrainer::new(bad, tiny_conditional(), c, &device).is_err());
}

#[test]
fn the_training_record_round_trips_and_names_a_schedule_mismatch() {
    let device = Device::flex();
    let config = tiny_conditional();
    let model = config.init_seeded(&device, 3).unwrap();
    let record = TrainingRecord {
        schedule: ScheduleConfig::default(),
        prediction: PredictionType::Epsilon,
        num_classes: Some(3),
        label_dropout: 0.1,
        ema_decay: 0.999,
        steps_trained: 1234,
        batch: 64,
        lr: 1e-3,
        final_loss: Some(0.0251),
        min_snr_gamma: Some(5.0),
        balance_classes: true,
        averaged_from: vec!["a.safetensors".into(), "b.safetensors".into()],
    };
    let bytes = model.safetensors_bytes(&config, Some(&record)).unwrap();
    assert_eq!(
        read_training_record(&bytes, "mem").unwrap(),
        Some(record.clone())
    );
    assert_eq!(read_config(&bytes, "mem").unwrap(), config);
    let (back, _) = load_safetensors(&bytes, "mem", &device).unwrap();
    assert_eq!(back.num_classes(), Some(3));
    assert!(
        record
            .schedule_mismatch(&ScheduleConfig::default())
            .is_none()
    );
    let cosine = ScheduleConfig {
        kind: difflab::diffusion::BetaSchedule::Cosine,
        ..ScheduleConfig::default()
    };
    let m = record.schedule_mismatch(&cosine).expect("a mismatch");
    assert!(
        m.contains("linear, T = 1000") && m.contains("cosine"),
        "{m}"
    );
    // A file without a record (all files before it existed) has none.
    let plain = model.safetensors_bytes(&config, None).unwrap();
    assert_eq!(read_training_record(&plain, "mem").unwrap(), None);
}

/// The unconditional U-Net shipped before class conditioning, kept as a fixture.
const OLD_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/mnist-unet-unconditional-v1.safetensors"
);

#[test]
fn an_old_unconditional_file_loads_and_samples_as_before() {
    let device = Device::flex();
    let bytes = std::fs::read(OLD_FILE).unwrap();
    let (model, config) = load_safetensors(&bytes, "old", &device).unwrap();
    assert_eq!(config.num_classes, None);
    assert_eq!(model.num_classes(), None);
    let m = UNetDenoiser { model, config };
    let scheduler = crate::common::ddim10(m.prediction_type());
    let x = sample_seeded(
        &m,
        &scheduler,
        0,
        2,
        &AtomicBool::new(false),
        &device,
        |_| {},
    )
    .unwrap()
    .unwrap();
    let v = to_vec(x).unwrap();
    let sum: f32 = v.iter().sum();
    let probe = [v[100], v[400], v[784 + 300], v[784 + 500]];
    let expected_sum = EXPECTED_SUM;
    assert!(
        (sum - expected_sum).abs() < 1e-2,
        "sum {sum}, expected {expected_sum}"
    );
    let d = crate::common::max_abs_diff(&probe, &EXPECTED_PROBE);
    assert!(d < 1e-4, "probe {probe:?}, expected {EXPECTED_PROBE:?}");
    // And a label is refused on it.
    assert!(Guided::new(Arc::new(m), vec![1], 2.0).is_err());
}

// DDIM-10 (seed 0, 2 samples) of the fixture, recorded when the class embedding was added; an
// unconditional net takes exactly the code path it took before (no class embedding).
const EXPECTED_SUM: f32 = -1160.856;
const EXPECTED_PROBE: [f32; 4] = [-0.984_867_3, -0.207_361_94, -0.571_982, -0.971_416_65];

fn difflab(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args(args)
        .output()
        .expect("run difflab")
}

/// A tiny conditional weights file (3 classes, trained on the linear schedule) in a temp dir.
fn conditional_file(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("difflab-guided-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let device = Device::flex();
    let config = tiny_conditional();
    let record = TrainingRecord {
        schedule: ScheduleConfig::default(),
        prediction: PredictionType::Epsilon,
        num_classes: Some(3),
        label_dropout: 0.1,
        ema_decay: 0.999,
        steps_trained: 1,
        batch: 8,
        lr: 1e-3,
        final_loss: None,
        min_snr_gamma: None,
        balance_classes: false,
        averaged_from: Vec::new(),
    };
    let path = dir.join("cond.safetensors");
    config
        .init_seeded(&device, 5)
        .unwrap()
        .save_trained(&config, &record, &path)
        .unwrap();
    (dir, path)
}

#[test]
fn the_cli_samples_guided_and_refuses_bad_labels_and_scales() {
    let (dir, weights) = conditional_file("cli");
    let w = weights.to_str().unwrap();
    let out = dir.join("grid.png");
    let o = out.to_str().unwrap();
    let base = ["sample", "--model", "unet", "--weights", w, "--steps", "3"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        difflab(&args)
    };
    // One row per class: 3 classes × 2.
    let ok = run(&["--label", "all", "--count", "2", "--guidance", "2", "-o", o]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let img = image::open(&out).unwrap();
    let one = run(&["--count", "1", "-o", o]);
    assert!(one.status.success());
    let cell = image::open(&out).unwrap();
    assert_eq!(
        img.height(),
        3 * cell.height() - 2 * 2,
        "three rows (2 px gaps, scale 2)"
    );
    for (extra, needle) in [
        (vec!["--label", "3"], "out of range"),
        (vec!["--label", "1", "--guidance", "-1"], "guidance scale"),
        (vec!["--label", "1", "--guidance", "nan"], "guidance scale"),
        (vec!["--label", "1", "--guidance", "inf"], "guidance scale"),
        (vec!["--label", "seven"], "not a label"),
    ] {
        let mut e = extra.clone();
        e.extend(["-o", o]);
        let r = run(&e);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
        assert!(
            err.contains(needle),
            "{extra:?}: expected '{needle}' in {err}"
        );
    }
    // A label on an unconditional model.
    let r = difflab(&[
        "sample",
        "--model",
        "unet",
        "--weights",
        OLD_FILE,
        "--label",
        "3",
        "--steps",
        "2",
        "-o",
        o,
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("unconditional"));
    // Another schedule than the training one: a warning on stderr, and the samples still come.
    let r = run(&["--schedule", "cosine", "--count", "1", "-o", o]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(
        err.contains("warning: this model was trained on the schedule linear"),
        "{err}"
    );
    let r = run(&["--count", "1", "-o", o]);
    assert!(!String::from_utf8_lossy(&r.stderr).contains("warning"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn extending_a_resumed_run_continues_the_learning_rate_without_a_jump() {
    let dir = std::env::temp_dir().join(format!("difflab-lr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("checkpoint.bin");
    let device = Device::flex();
    let config = TrainConfig {
        steps: 10,
        batch: 4,
        warmup: 2,
        ..TrainConfig::default()
    };
    let mut t = UNetTrainer::new(labelled_images(), tiny_conditional(), config, &device).unwrap();
    for _ in 0..8 {
        t.train_step().unwrap();
    }
    let before = t.config.lr_at(7);
    let at8 = t.config.lr_at(8);
    t.save_checkpoint(&ckpt).unwrap();
    let r = UNetTrainer::resume(&ckpt, labelled_images(), Some(100), &device).unwrap();
    assert_eq!(r.step, 8);
    // Continuous at the resume point, then decaying to 0 at the new end.
    assert!(
        (r.config.lr_at(8) - at8).abs() < 1e-12,
        "{} vs {at8}",
        r.config.lr_at(8)
    );
    assert!(r.config.lr_at(8) <= before);
    assert!(r.config.lr_at(50) < at8 && r.config.lr_at(50) > 0.0);
    assert!(r.config.lr_at(99) < 1e-3 * at8);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_started_from_unconditional_weights_learns_its_class_embedding() {
    let device = Device::flex();
    let plain = UNetConfig {
        num_classes: None,
        ..tiny_conditional()
    };
    // The file says it was trained 700 steps: the run's record counts on from there.
    let record = TrainingRecord {
        schedule: ScheduleConfig::default(),
        prediction: PredictionType::Epsilon,
        num_classes: None,
        label_dropout: 0.0,
        ema_decay: 0.999,
        steps_trained: 700,
        batch: 8,
        lr: 1e-3,
        final_loss: None,
        min_snr_gamma: None,
        balance_classes: false,
        averaged_from: Vec::new(),
    };
    let bytes = plain
        .init_seeded(&device, 8)
        .unwrap()
        .safetensors_bytes(&plain, Some(&record))
        .unwrap();
    let config = TrainConfig {
        steps: 10,
        batch: 8,
        warmup: 1,
        ..TrainConfig::default()
    };
    let mut t = UNetTrainer::new(labelled_images(), tiny_conditional(), config, &device).unwrap();
    t.init_from(&bytes, "mem").unwrap();
    assert_eq!(t.config.steps_before, 700);
    let emb = |t: &UNetTrainer| to_vec(t.raw().unwrap().class_embedding().unwrap()).unwrap();
    assert!(emb(&t).iter().all(|v| *v == 0.0), "starts at zero");
    // Step 0 is exactly the unconditional file, whatever the label.
    let x = input8(&device);
    let (file, _) = load_safetensors(&bytes, "mem", &device).unwrap();
    let a = to_vec(file.forward(x.clone(), &[3, 9])).unwrap();
    let b = to_vec(t.raw().unwrap().forward_labels(x, &[3, 9], Some(&[1, 2]))).unwrap();
    assert_eq!(a, b);
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    let moved = emb(&t).iter().filter(|v| v.abs() > 0.0).count();
    assert!(moved > 0, "the class embedding is trained");
    // And it keeps training after a checkpoint and resume.
    let dir = std::env::temp_dir().join(format!("difflab-initfrom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("checkpoint.bin");
    t.save_checkpoint(&ckpt).unwrap();
    let mut r = UNetTrainer::resume(&ckpt, labelled_images(), None, &device).unwrap();
    let before = emb(&r);
    r.train_step().unwrap();
    assert_ne!(before, emb(&r), "still trained after resume");
    assert_eq!(
        (r.config.steps_before, r.step),
        (700, 4),
        "the count survives a resume"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_shipped_models_2b_pass_equals_two_separate_passes_at_batch_8() {
    let device = Device::flex();
    let (model, config) = difflab::model::unet::shipped(&device).unwrap();
    let n = config
        .num_classes
        .expect("the digits model is class-conditional");
    let m = UNetDenoiser {
        model: model.clone(),
        config,
    };
    let b = 8;
    let x: Vec<f32> = (0..b * 784)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = tensor4(x, [b, 1, 28, 28], &device);
    let ts = vec![500; b];
    let labels: Vec<usize> = (0..b).map(|i| i % n).collect();
    let parts = guided_parts(&m, x.clone(), &ts, &labels, 2.0).unwrap();
    let cond = to_vec(model.forward_labels(x.clone(), &ts, Some(&labels))).unwrap();
    let uncond = to_vec(model.forward(x, &ts)).unwrap();
    let dc = crate::common::max_abs_diff(&to_vec(parts.cond).unwrap(), &cond);
    let du = crate::common::max_abs_diff(&to_vec(parts.uncond).unwrap(), &uncond);
    assert!(
        dc < 1e-4 && du < 1e-4,
        "cond differs by {dc}, uncond by {du}"
    );
}

/// The exact class-conditional denoiser: E[x_0 | x_t] over the digits of the asked label, and
/// over all digits for ∅. Its ε_c and ε_∅ are exact, so guidance on it isolates the guidance
/// pipeline (the 2B pass, the combination, the sampler) from what a network learned.
struct ExactConditional {
    all: difflab::model::ExactDenoiser,
    per_label: Vec<difflab::model::ExactDenoiser>,
}

impl Denoiser for ExactConditional {
    fn prediction_type(&self) -> PredictionType {
        self.all.prediction_type()
    }
    fn sample_shape(&self) -> [usize; 3] {
        self.all.sample_shape()
    }
    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        self.all.forward(x_t, timesteps)
    }
    fn name(&self) -> String {
        "exact conditional".into()
    }
}

impl ConditionalDenoiser for ExactConditional {
    fn num_classes(&self) -> Option<usize> {
        Some(self.per_label.len())
    }
    fn forward_labels(&self, x_t: Tensor<4>, ts: &[usize], labels: &[usize]) -> Result<Tensor<4>> {
        // One image at a time (a few per test), each with its label's set or all for ∅.
        let parts: Vec<Tensor<4>> = (0..labels.len())
            .map(|i| {
                let x = x_t.clone().narrow(0, i, 1);
                match self.per_label.get(labels[i]) {
                    Some(m) => m.forward(x, &ts[i..=i]),
                    None => self.all.forward(x, &ts[i..=i]),
                }
            })
            .collect::<Result<_>>()?;
        Ok(Tensor::cat(parts, 0))
    }
}

/// With exact ε_c and ε_∅, guided DDIM draws a digit of the asked label at w = 1, 3 and 6
/// (a training digit itself up to w = 3): guidance itself (the 2B pass, ε̃ = ε_∅ + w·(ε_c −
/// ε_∅), the sampler) is sound, so what the shipped U-Net does at w > 1 is the network's.
#[test]
fn guidance_on_the_exact_conditional_denoiser_draws_the_asked_digit() {
    use difflab::diffusion::NoiseSchedule;
    let device = Device::flex();
    let mnist = difflab::data::mnist::Mnist::embedded().unwrap();
    let n = 200;
    let images = mnist.images(n);
    let labels: Vec<usize> = mnist.labels[..n].iter().map(|&l| l as usize).collect();
    let schedule = Arc::new(NoiseSchedule::new(ScheduleConfig::default()).unwrap());
    let exact = |set: Vec<Vec<f32>>| {
        difflab::model::ExactDenoiser::new(&set, [1, 28, 28], schedule.clone(), &device).unwrap()
    };
    let model = Arc::new(ExactConditional {
        all: exact(images.clone()),
        per_label: (0..10)
            .map(|d| {
                exact(
                    (0..n)
                        .filter(|&i| labels[i] == d)
                        .map(|i| images[i].clone())
                        .collect(),
                )
            })
            .collect(),
    });
    let scheduler = crate::common::ddim10(model.prediction_type());
    for (digit, w) in [(3usize, 1.0), (3, 3.0), (7, 6.0)] {
        let g = Guided::new(model.clone(), vec![digit], w).unwrap();
        let x = sample_seeded(
            &g,
            &scheduler,
            5,
            3,
            &AtomicBool::new(false),
            &device,
            |_| {},
        )
        .unwrap()
        .unwrap();
        let v = to_vec(x).unwrap();
        for (k, sample) in v.chunks(784).enumerate() {
            let (nearest, d2) = images
                .iter()
                .enumerate()
                .map(|(i, img)| {
                    let d2: f32 = img.iter().zip(sample).map(|(a, b)| (a - b) * (a - b)).sum();
                    (i, d2)
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert_eq!(
                labels[nearest], digit,
                "w = {w}, sample {k}: nearest training digit is a {} (distance² {d2})",
                labels[nearest]
            );
            // Up to w = 3 it lands on a training digit; beyond, the extrapolation leaves the
            // set (at w = 6 about 0.09 per pixel away) but keeps the class.
            if w <= 3.0 {
                assert!(
                    d2 / 784.0 < 0.05,
                    "w = {w}, sample {k}: lands on a digit ({d2})"
                );
            }
        }
    }
}

/// `use_clipped_model_output`: when x̂0 is clipped, DDIM's direction term uses the ε̂ that the
/// clipped x̂0 implies, ε̂ = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t); off, it keeps the model's ε (diffusers'
/// default). Checked against the formula on a step whose x̂0 is clipped.
#[test]
fn clipped_model_output_rederives_epsilon_in_ddim() {
    use difflab::diffusion::{NoiseSchedule, Scheduler, SchedulerConfig};
    let device = Device::flex();
    let base = SchedulerConfig::ddim(ScheduleConfig::default(), PredictionType::Epsilon, 10, 0.0);
    let schedule = NoiseSchedule::new(ScheduleConfig::default()).unwrap();
    let x: Vec<f32> = vec![2.0, -0.5, 0.25, 1.5];
    let eps: Vec<f32> = vec![0.1, -0.2, 0.3, 0.0];
    for clipped in [false, true] {
        let s = Scheduler::new(SchedulerConfig {
            use_clipped_model_output: clipped,
            ..base
        })
        .unwrap();
        let t = s.timesteps()[5];
        let prev_t = s.timesteps()[6];
        let out = s
            .step(
                tensor4(eps.clone(), [1, 1, 2, 2], &device),
                t,
                tensor4(x.clone(), [1, 1, 2, 2], &device),
                None,
            )
            .unwrap();
        let got = to_vec(out.prev_sample).unwrap();
        let (a, ap) = (schedule.alphas_cumprod[t], schedule.alphas_cumprod[prev_t]);
        for i in 0..4 {
            let x0 = (f64::from(x[i]) - (1.0 - a).sqrt() * f64::from(eps[i])) / a.sqrt();
            let x0c = x0.clamp(-1.0, 1.0);
            let e = if clipped {
                (f64::from(x[i]) - a.sqrt() * x0c) / (1.0 - a).sqrt()
            } else {
                f64::from(eps[i])
            };
            let want = ap.sqrt() * x0c + (1.0 - ap).sqrt() * e;
            assert!(
                (f64::from(got[i]) - want).abs() < 1e-5,
                "clipped = {clipped}, item {i}: {} against {want}",
                got[i]
            );
        }
        if clipped {
            // Item 0's x̂0 is clipped, so the two settings differ there.
            let x0 = (2.0 - (1.0 - a).sqrt() * 0.1) / a.sqrt();
            assert!(x0 > 1.0);
        }
    }
}
