//! The U-Net, its trainer and its weights files.

use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use difflab::diffusion::NoiseSchedule;
use difflab::diffusion::{PredictionType, ScheduleConfig, sample_seeded};
use difflab::model::unet::{load_safetensors, read_config};
use difflab::model::{Denoiser, UNetConfig, UNetDenoiser};
use difflab::tensor_util::{tensor4, to_vec};
use difflab::train::unet::{
    ImageSet, InitFrom, LossKind, TrainConfig, UNetTrainer, min_snr_weights,
};

use crate::common::tiny_unet as tiny;

/// 16 little 8×8 images: bars and blocks in [−1, 1].
fn toy_images() -> ImageSet {
    let images: Vec<Vec<f32>> = (0..16)
        .map(|k| {
            (0..64)
                .map(|i| {
                    let (x, y) = (i % 8, i / 8);
                    if (x + k) % 4 == 0 || (y * k) % 5 == 1 {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .collect()
        })
        .collect();
    ImageSet::new(&images, [1, 8, 8]).expect("images")
}

fn short(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch: 8,
        warmup: 5,
        ..TrainConfig::default()
    }
}

#[test]
fn odd_configs_keep_the_input_shape() {
    let device = Device::flex();
    let configs = [
        tiny(),
        tiny().with_attention(false).with_blocks_per_level(2),
        UNetConfig::new()
            .with_in_channels(3)
            .with_image_size(12)
            .with_base_channels(4)
            .with_channel_mult(vec![1, 2, 3])
            .with_groups(2),
        tiny()
            .with_image_size(16)
            .with_channel_mult(vec![1, 1, 2, 2])
            .with_prediction(PredictionType::VPrediction),
        UNetConfig::new()
            .with_image_size(5)
            .with_base_channels(4)
            .with_channel_mult(vec![2])
            .with_groups(1),
    ];
    for c in configs {
        let s = c.image_size;
        let m = c.init(&device).expect("model");
        let x = tensor4(
            vec![0.1; 3 * c.in_channels * s * s],
            [3, c.in_channels, s, s],
            &device,
        );
        let y = m.forward(x, &[0, 500, 999]);
        assert_eq!(y.dims(), [3, c.in_channels, s, s], "{c:?}");
        assert!(to_vec(y).expect("values").iter().all(|v| v.is_finite()));
    }
    // Sizes that don't halve cleanly, and groups that don't divide, are refused.
    assert!(
        tiny()
            .with_image_size(10)
            .with_channel_mult(vec![1, 2, 2])
            .init(&device)
            .is_err()
    );
    assert!(tiny().with_groups(3).init(&device).is_err());
    assert!(
        tiny()
            .with_prediction(PredictionType::Sample)
            .init(&device)
            .is_err()
    );
    // The default (MNIST) model is about the size of the 0.49M-parameter reference.
    let n = UNetConfig::new().init(&device).expect("model").num_params();
    assert!((300_000..800_000).contains(&n), "{n} parameters");
}

#[test]
fn safetensors_round_trip_gives_identical_outputs() {
    let device = Device::flex();
    let c = tiny();
    let m = c.init_seeded(&device, 3).expect("model");
    let bytes = m.safetensors_bytes(&c, None).expect("bytes");
    assert_eq!(read_config(&bytes, "mem").expect("config"), c);
    let (back, c2) = load_safetensors(&bytes, "mem", &device).expect("load");
    assert_eq!(c2, c);
    let x = tensor4(
        (0..128).map(|i| (i as f32 * 0.37).sin()).collect(),
        [2, 1, 8, 8],
        &device,
    );
    let a = to_vec(m.forward(x.clone(), &[3, 700])).expect("a");
    let b = to_vec(back.forward(x, &[3, 700])).expect("b");
    assert_eq!(a, b);

    // Truncated, corrupt and mismatched files are refused, naming what is wrong.
    let err = load_safetensors(&bytes[..bytes.len() / 2], "half.safetensors", &device)
        .expect_err("truncated")
        .to_string();
    assert!(
        err.contains("half.safetensors") && err.contains("truncated"),
        "{err}"
    );
    let err = load_safetensors(b"not a model at all", "junk", &device)
        .expect_err("junk")
        .to_string();
    assert!(err.contains("junk"), "{err}");
    let other = tiny().with_base_channels(16);
    let other_bytes = other
        .init(&device)
        .expect("m")
        .safetensors_bytes(&c, None)
        .expect("b");
    let err = load_safetensors(&other_bytes, "mismatch", &device)
        .expect_err("shapes differ")
        .to_string();
    assert!(err.contains("mismatch"), "{err}");

    // A header whose config does not match its tensors: one line naming the first tensor
    // and both shapes, or the first missing tensor (burn's own errors ran to 28 lines).
    let edited = |key: &str, value: u64| {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let meta = &mut header["__metadata__"][difflab::model::unet::CONFIG_KEY];
        let mut config: serde_json::Value = serde_json::from_str(meta.as_str().unwrap()).unwrap();
        config[key] = value.into();
        *meta = config.to_string().into();
        let head = serde_json::to_vec(&header).unwrap();
        let mut out = (head.len() as u64).to_le_bytes().to_vec();
        out.extend(head);
        out.extend(&bytes[8 + n..]);
        out
    };
    let err = load_safetensors(&edited("base_channels", 16), "wide.safetensors", &device)
        .expect_err("a wider config")
        .to_string();
    assert!(
        err.starts_with("wide.safetensors: tensor ")
            && err.contains("has shape [8, ")
            && err.contains("where the model needs [16, ")
            && !err.contains('\n'),
        "{err}"
    );
    let err = load_safetensors(&edited("blocks_per_level", 2), "deep.safetensors", &device)
        .expect_err("a deeper config")
        .to_string();
    assert!(
        err.starts_with("deep.safetensors: missing tensor ") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn a_tiny_model_overfits_one_batch() {
    let device = Device::flex().autodiff();
    let c = tiny();
    let mut m = c.init_seeded(&device, 1).expect("model");
    let mut optim = AdamWConfig::new().init();
    let data = toy_images();
    let x0 = tensor4(data.pixels[..4 * 64].to_vec(), [4, 1, 8, 8], &device);
    let eps = tensor4(
        difflab::diffusion::noise::gaussian(9, 0, 4 * 64),
        [4, 1, 8, 8],
        &device,
    );
    let schedule = difflab::diffusion::NoiseSchedule::new(ScheduleConfig::default()).expect("s");
    let ts = [10, 200, 500, 900];
    let x_t = difflab::diffusion::q_sample(&schedule, x0, &ts, eps.clone()).expect("x_t");
    let mut losses = Vec::new();
    for _ in 0..300 {
        let loss = (m.forward(x_t.clone(), &ts) - eps.clone())
            .powi_scalar(2)
            .mean();
        losses.push(to_vec(loss.clone()).expect("loss")[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = optim.step(3e-3, m, grads);
    }
    let (first, last) = (losses[0], *losses.last().expect("losses"));
    eprintln!("one batch: loss {first:.4} → {last:.5}");
    assert!(last < first / 10.0, "the loss falls 10×: {first} → {last}");
}

#[test]
fn the_same_seed_gives_the_same_first_100_losses() {
    let device = Device::flex();
    let run = |seed: u64| {
        let mut t = UNetTrainer::new(
            toy_images(),
            tiny(),
            TrainConfig {
                seed,
                loss: LossKind::Huber,
                ..short(100)
            },
            &device,
        )
        .expect("trainer");
        (0..100)
            .map(|_| t.train_step().expect("step"))
            .collect::<Vec<f32>>()
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
    assert!(a.iter().all(|l| l.is_finite()));
}

#[test]
fn min_snr_weights_follow_the_formula() {
    let schedule = NoiseSchedule::new(ScheduleConfig::default()).unwrap();
    let ts = [0, 129, 500, 999];
    let eps = min_snr_weights(&schedule, &ts, 5.0, PredictionType::Epsilon);
    let v = min_snr_weights(&schedule, &ts, 5.0, PredictionType::VPrediction);
    for (i, &t) in ts.iter().enumerate() {
        let a = schedule.alphas_cumprod[t];
        let snr = a / (1.0 - a);
        assert!((eps[i] - snr.min(5.0) / snr).abs() < 1e-12);
        assert!((v[i] - snr.min(5.0) / (snr + 1.0)).abs() < 1e-12);
    }
    // t = 0 (ᾱ = 1 − 10⁻⁴, SNR 9999): the easiest step weighs 5/9999; from SNR 5 down
    // (t ≥ about 130 on the linear schedule) every step weighs 1 for ε.
    assert!((eps[0] - 5.0 / 9999.0).abs() < 1e-6, "{}", eps[0]);
    assert_eq!(&eps[2..], &[1.0, 1.0]);
    assert!(v[3] < 1e-4 && v[0] < 1e-3, "{v:?}");
}

#[test]
fn min_snr_weighting_scales_each_images_loss_by_its_weight() {
    // One image, batch 1: the weighted loss of step k is the plain one times the weight of
    // step k's timestep. γ is set to half that timestep's SNR, so the weight is exactly 1/2.
    let device = Device::flex();
    let one = ImageSet::new(&[toy_images().pixels[..64].to_vec()], [1, 8, 8]).unwrap();
    let config = TrainConfig {
        batch: 1,
        ..short(3)
    };
    let run = |gamma: Option<f64>| {
        let mut t = UNetTrainer::new(
            one.clone(),
            tiny(),
            TrainConfig {
                min_snr_gamma: gamma,
                ..config.clone()
            },
            &device,
        )
        .unwrap();
        let (_, ts) = t.batch_of(0);
        (ts[0], t.train_step().unwrap())
    };
    let (t0, plain) = run(None);
    let schedule = NoiseSchedule::new(ScheduleConfig::default()).unwrap();
    let snr = schedule.alphas_cumprod[t0] / (1.0 - schedule.alphas_cumprod[t0]);
    let (_, weighted) = run(Some(snr / 2.0));
    assert!(
        (weighted / plain - 0.5).abs() < 1e-5,
        "t = {t0}: {weighted} against {plain}"
    );
    // A γ above every SNR weighs nothing differently.
    let (_, same) = run(Some(1e9));
    assert!(
        (same - plain).abs() <= 1e-7 * plain.abs(),
        "{same} against {plain}"
    );
    // And γ ≤ 0 is refused.
    let bad = TrainConfig {
        min_snr_gamma: Some(0.0),
        ..config
    };
    assert!(UNetTrainer::new(one, tiny(), bad, &device).is_err());
}

#[test]
fn resuming_equals_training_without_a_break() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("difflab-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ckpt = dir.join("checkpoint.bin");
    let config = TrainConfig {
        loss: LossKind::L1,
        ..short(10)
    };
    let unet = tiny().with_prediction(PredictionType::VPrediction);

    let mut straight =
        UNetTrainer::new(toy_images(), unet.clone(), config.clone(), &device).expect("trainer");
    let a: Vec<f32> = (0..10)
        .map(|_| straight.train_step().expect("step"))
        .collect();

    let mut first = UNetTrainer::new(toy_images(), unet, config, &device).expect("trainer");
    let mut b: Vec<f32> = (0..4).map(|_| first.train_step().expect("step")).collect();
    first.save_checkpoint(&ckpt).expect("save");
    drop(first);
    let mut resumed = UNetTrainer::resume(&ckpt, toy_images(), None, &device).expect("resume");
    assert_eq!(resumed.step, 4);
    b.extend((0..6).map(|_| resumed.train_step().expect("step")));
    assert_eq!(a, b, "losses match bit for bit");

    let x = tensor4(vec![0.3; 64], [1, 1, 8, 8], &device);
    let ya = to_vec(straight.ema().forward(x.clone(), &[123])).expect("a");
    let yb = to_vec(resumed.ema().forward(x, &[123])).expect("b");
    assert_eq!(ya, yb, "EMA weights match bit for bit");

    // A checkpoint of other data is refused.
    let fewer = ImageSet::new(&[vec![0.0; 64]], [1, 8, 8]).expect("one image");
    assert!(UNetTrainer::resume(&ckpt, fewer, None, &device).is_err());
    std::fs::write(&ckpt, b"DLCKPT1\nshort").expect("write");
    assert!(UNetTrainer::resume(&ckpt, toy_images(), None, &device).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_lr_warms_up_then_decays_to_zero() {
    let c = TrainConfig {
        steps: 1000,
        warmup: 100,
        lr: 1e-3,
        ..TrainConfig::default()
    };
    assert!((c.lr_at(0) - 1e-5).abs() < 1e-12);
    assert!((c.lr_at(99) - 1e-3).abs() < 1e-12);
    assert!((c.lr_at(550) - 0.5e-3).abs() < 1e-9);
    assert!(c.lr_at(999) < 1e-6);
}

#[test]
fn the_shipped_weights_load_and_sample_digits() {
    let device = Device::flex();
    let (model, config) = difflab::model::unet::shipped(&device).expect("shipped weights");
    assert_eq!(config.image_size, 28);
    let m = UNetDenoiser { model, config };
    let scheduler = crate::common::ddim10(m.prediction_type());
    let cancel = AtomicBool::new(false);
    let x = sample_seeded(&m, &scheduler, 0, 4, &cancel, &device, |_| {})
        .expect("sample")
        .expect("not cancelled");
    let v = to_vec(x).expect("values");
    assert!(v.iter().all(|x| x.is_finite()));
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
    // Digits: mostly dark background (−1) with bright strokes.
    assert!(var > 0.1, "not constant: variance {var}");
    assert!(mean < -0.3, "mostly background: mean {mean}");
}

#[test]
fn the_unet_computes_the_same_on_flex_and_wgpu() {
    let Some(wgpu) = crate::common::wgpu() else {
        return;
    };
    let flex = Device::flex();
    let c = tiny();
    let m = c.init_seeded(&flex, 4).expect("model");
    let bytes = m.safetensors_bytes(&c, None).expect("bytes");
    let (on_gpu, _) = load_safetensors(&bytes, "mem", &wgpu).expect("load on wgpu");
    let values: Vec<f32> = (0..128).map(|i| (i as f32 * 0.61).cos()).collect();
    let a = to_vec(m.forward(tensor4(values.clone(), [2, 1, 8, 8], &flex), &[5, 600])).expect("a");
    let b = to_vec(on_gpu.forward(tensor4(values, [2, 1, 8, 8], &wgpu), &[5, 600])).expect("b");
    let d = crate::common::max_abs_diff(&a, &b);
    assert!(d < 1e-3, "flex and wgpu differ by {d}");

    // Training runs on wgpu's autodiff device too (its initialisation draws from the wgpu
    // RNG, so the losses are not flex's).
    let mut t = UNetTrainer::new(toy_images(), tiny(), short(3), &wgpu).expect("trainer");
    let losses: Vec<f32> = (0..3).map(|_| t.train_step().expect("step")).collect();
    assert!(
        losses
            .iter()
            .all(|l| l.is_finite() && *l > 0.0 && *l < 10.0),
        "{losses:?}"
    );
}

#[test]
fn the_ema_moves_every_parameter_and_refuses_a_foreign_model() {
    use difflab::train::unet::ema_update;
    let device = Device::flex();
    let model = tiny().init_seeded(&device, 21).expect("model");
    // A copy with the same parameter ids and other values: the model after some steps.
    let moved = model.clone().map(&mut Shift(0.5));
    let ema = ema_update(model.clone(), &moved, 0.9).expect("matching ids");
    // ema = 0.9·θ + 0.1·(θ + 0.5) = θ + 0.05, for every parameter.
    let flat = |m: &difflab::model::UNet| -> Vec<f32> {
        let mut v = Flat(Vec::new());
        m.visit(&mut v);
        v.0
    };
    let (before, after) = (flat(&model), flat(&ema));
    assert_eq!(before.len(), after.len());
    let worst = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b - 0.05).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-5,
        "every parameter moves by 0.05 (worst error {worst})"
    );
    // A model initialised separately has other ids: refused, not silently skipped.
    let other = tiny().init(&device).expect("model");
    assert!(ema_update(model, &other, 0.9).is_err());
}

struct Shift(f32);

impl burn::module::ModuleMapper for Shift {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<D>> {
        let s = self.0;
        param.map(|t| t + s)
    }
}

struct Flat(Vec<f32>);

impl burn::module::ModuleVisitor for Flat {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<D>>,
    ) {
        self.0.extend(to_vec(param.val()).expect("values"));
    }
}

/// The largest |a − b| over two equally long vectors.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_shipped_net_widened_computes_the_same_outputs() {
    let device = Device::flex();
    let (narrow, config) = difflab::model::unet::shipped(&device).expect("shipped weights");
    let (wide, wide_config) = narrow.widened(&config, 3, &device).expect("widened");
    assert_eq!(wide_config.base_channels, 2 * config.base_channels);
    assert_eq!(wide_config.num_classes, config.num_classes);
    // About 4× the parameters (convs grow 4×, the class rows and image channels 2×).
    let (n, w) = (narrow.num_params(), wide.num_params());
    assert!(w > 3 * n && w < 4 * n, "{n} -> {w} parameters");
    let x = tensor4(
        (0..2 * 28 * 28)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect(),
        [2, 1, 28, 28],
        &device,
    );
    for (t, labels) in [([999, 500], [3, 10]), ([20, 0], [7, 1])] {
        let a = to_vec(narrow.forward_labels(x.clone(), &t, Some(&labels))).unwrap();
        let b = to_vec(wide.forward_labels(x.clone(), &t, Some(&labels))).unwrap();
        let d = max_diff(&a, &b);
        assert!(d < 1e-4, "t = {t:?}: outputs differ by {d}");
        assert!(
            a.iter().map(|v| v.abs()).sum::<f32>() > 100.0,
            "not a zero output"
        );
    }
}

#[test]
fn every_layer_kind_survives_widening_and_odd_widths_are_refused() {
    let device = Device::flex();
    let x = tensor4(
        (0..3 * 64)
            .map(|i| ((i * 13 % 29) as f32 / 14.0) - 1.0)
            .collect(),
        [3, 1, 8, 8],
        &device,
    );
    for config in [
        tiny(),
        tiny().with_blocks_per_level(2).with_up_conv(true),
        tiny().with_attention(false).with_num_classes(Some(3)),
    ] {
        let narrow = config.init_seeded(&device, 5).unwrap();
        let (wide, _) = narrow.widened(&config, 9, &device).unwrap();
        let labels = [0, 2, 3];
        let a = to_vec(narrow.forward_labels(x.clone(), &[1, 400, 999], Some(&labels))).unwrap();
        let b = to_vec(wide.forward_labels(x.clone(), &[1, 400, 999], Some(&labels))).unwrap();
        let d = max_diff(&a, &b);
        assert!(d < 1e-4, "{config:?}: outputs differ by {d}");
    }
    let odd = tiny()
        .with_base_channels(4)
        .with_groups(1)
        .with_channel_mult(vec![1, 3]);
    let odd = UNetConfig {
        base_channels: 3,
        ..odd
    };
    let narrow = odd.init_seeded(&device, 5).unwrap();
    let e = narrow.widened(&odd, 9, &device).expect_err("refused");
    assert!(e.to_string().contains("odd number of base channels"), "{e}");
}

/// The SafeTensors bytes of a `config` net with weights drawn from seed 8.
fn seeded_file(config: &UNetConfig) -> Vec<u8> {
    config
        .init_seeded(&Device::flex(), 8)
        .unwrap()
        .safetensors_bytes(config, None)
        .unwrap()
}

#[test]
fn a_v_prediction_run_may_start_from_epsilon_weights() {
    let device = Device::flex();
    let eps = tiny();
    let bytes = seeded_file(&eps);
    let v = UNetConfig {
        prediction: PredictionType::VPrediction,
        ..tiny()
    };
    let mut t = UNetTrainer::new(toy_images(), v, short(3), &device).unwrap();
    assert_eq!(
        t.init_from(&bytes, "mem").unwrap(),
        InitFrom::Reparametrised {
            from: PredictionType::Epsilon,
            to: PredictionType::VPrediction
        }
    );
    // The weights are the file's, as they were; from here on they learn v.
    let x = tensor4(vec![0.25; 2 * 64], [2, 1, 8, 8], &device);
    let (file, _) = load_safetensors(&bytes, "mem", &device).unwrap();
    let a = to_vec(file.forward(x.clone(), &[3, 900])).unwrap();
    let b = to_vec(t.raw().unwrap().forward(x, &[3, 900])).unwrap();
    assert_eq!(a, b);
    for _ in 0..3 {
        assert!(t.train_step().unwrap().is_finite());
    }
    assert_eq!(t.unet.prediction, PredictionType::VPrediction);
    for (id, name) in [
        (PredictionType::Epsilon, "epsilon"),
        (PredictionType::Sample, "sample"),
        (PredictionType::VPrediction, "v_prediction"),
    ] {
        assert_eq!(id.name(), name);
        assert_eq!(PredictionType::parse(name).unwrap(), id);
    }
}

#[test]
fn a_run_may_start_from_a_net_of_half_its_width() {
    let device = Device::flex();
    let narrow = tiny().with_base_channels(4);
    let bytes = seeded_file(&narrow);
    let mut t = UNetTrainer::new(toy_images(), tiny(), short(3), &device).unwrap();
    assert_eq!(
        t.init_from(&bytes, "mem").unwrap(),
        InitFrom::Widened { from: 4, to: 8 }
    );
    // Step 0 computes what the narrow file does.
    let x = tensor4(vec![0.25; 2 * 64], [2, 1, 8, 8], &device);
    let (file, _) = load_safetensors(&bytes, "mem", &device).unwrap();
    let a = to_vec(file.forward(x.clone(), &[3, 900])).unwrap();
    let b = to_vec(t.raw().unwrap().forward(x, &[3, 900])).unwrap();
    assert!(max_diff(&a, &b) < 1e-4);
    // And it trains.
    for _ in 0..3 {
        assert!(t.train_step().unwrap().is_finite());
    }
    // A file of another width (not half) is still refused, with its config named.
    let other = tiny().with_base_channels(12).with_groups(4);
    let bytes = seeded_file(&other);
    let mut t = UNetTrainer::new(toy_images(), tiny(), short(3), &device).unwrap();
    let e = t.init_from(&bytes, "mem").unwrap_err().to_string();
    assert!(e.contains("another shape"), "{e}");
}
