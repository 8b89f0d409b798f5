//! The exact (memorising) denoiser: samples land on the training images.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use difflab::data::mnist::Mnist;
use difflab::diffusion::{
    NoiseSchedule, PredictionType, SamplerKind, ScheduleConfig, Scheduler, SchedulerConfig,
    TimestepSpacing, initial_noise, q_sample, sample_loop, step_noise,
};
use difflab::model::ExactDenoiser;
use difflab::tensor_util::{tensor4, to_vec};

fn ddim(steps: usize, eta: f64) -> SchedulerConfig {
    SchedulerConfig {
        prediction_type: PredictionType::Sample,
        num_inference_steps: steps,
        spacing: TimestepSpacing::Leading,
        sampler: SamplerKind::Ddim {
            eta,
            set_alpha_to_one: true,
        },
        ..SchedulerConfig::default()
    }
}

fn run(
    model: &ExactDenoiser,
    sched: &Scheduler,
    seed: u64,
    shape: [usize; 4],
    device: &Device,
) -> Vec<f32> {
    let x_t = initial_noise(seed, shape, device);
    let cancel = AtomicBool::new(false);
    let x0 = sample_loop(
        model,
        sched,
        x_t,
        |k, s| step_noise(seed, k, s, device),
        &cancel,
        |_| {},
    )
    .unwrap()
    .unwrap();
    to_vec(x0).unwrap()
}

#[test]
fn one_image_set_returns_that_image_from_any_seed() {
    let mnist = Mnist::embedded().unwrap();
    let image = mnist.image(3);
    for (name, device) in crate::common::devices() {
        let sched = Scheduler::new(ddim(50, 0.0)).unwrap();
        let model = ExactDenoiser::new(
            std::slice::from_ref(&image),
            [1, 28, 28],
            sched.schedule().clone(),
            &device,
        )
        .unwrap();
        for seed in [0, 7, 12345] {
            let out = run(&model, &sched, seed, [1, 1, 28, 28], &device);
            let err = crate::common::max_abs_diff(&out, &image);
            assert!(err < 1e-3, "{name}, seed {seed}: max error {err}");
        }
    }
}

#[test]
fn two_image_set_samples_land_on_one_of_them() {
    let mnist = Mnist::embedded().unwrap();
    let images = vec![mnist.image(0), mnist.image(1)];
    for (name, device) in crate::common::devices() {
        for eta in [0.0, 1.0] {
            let sched = Scheduler::new(ddim(50, eta)).unwrap();
            let model = ExactDenoiser::new(&images, [1, 28, 28], sched.schedule().clone(), &device)
                .unwrap();
            let batch = 8;
            let out = run(&model, &sched, 100, [batch, 1, 28, 28], &device);
            let mut hits = [0usize; 2];
            for i in 0..batch {
                let s = &out[i * 784..(i + 1) * 784];
                let d: Vec<f32> = images
                    .iter()
                    .map(|im| crate::common::max_abs_diff(s, im))
                    .collect();
                let best = usize::from(d[0] >= d[1]);
                assert!(
                    d[best] < 1e-3,
                    "{name} η={eta}: sample {i} is {} from the nearest image",
                    d[best]
                );
                hits[best] += 1;
            }
            // Eight seeds from a 50/50 posterior: both images should appear.
            assert!(
                hits[0] > 0 && hits[1] > 0,
                "{name} η={eta}: all samples chose the same image {hits:?}"
            );
        }
    }
}

#[test]
fn posterior_mean_is_the_nearest_image_at_small_t_and_the_mean_at_large_t() {
    let device = crate::common::flex();
    let schedule = Arc::new(NoiseSchedule::new(ScheduleConfig::default()).unwrap());
    let mnist = Mnist::embedded().unwrap();
    let images = mnist.images(3);
    let model =
        ExactDenoiser::with_chunk(&images, [1, 28, 28], schedule.clone(), &device, 2).unwrap();
    // Noise image 2 a little: x̂0 must be image 2.
    let x0 = tensor4(images[2].clone(), [1, 1, 28, 28], &device);
    let eps = initial_noise(5, [1, 1, 28, 28], &device);
    let x_t = q_sample(&schedule, x0, &[10], eps).unwrap();
    let pred = to_vec(model.predict_x0(x_t, &[10]).unwrap()).unwrap();
    assert!(crate::common::max_abs_diff(&pred, &images[2]) < 1e-3);
    // At t = T−1 with x_t = 0 the softmax weights follow ‖x_i‖² only; the prediction is a convex
    // combination, so it stays inside the images' range.
    let zero = tensor4(vec![0.0; 784], [1, 1, 28, 28], &device);
    let pred = to_vec(model.predict_x0(zero, &[999]).unwrap()).unwrap();
    assert!(pred.iter().all(|v| (-1.0001..=1.0001).contains(v)));
}

#[test]
fn chunking_does_not_change_the_result() {
    let device = crate::common::flex();
    let schedule = Arc::new(NoiseSchedule::new(ScheduleConfig::default()).unwrap());
    let mnist = Mnist::embedded().unwrap();
    let images = mnist.images(50);
    let x_t = initial_noise(3, [4, 1, 28, 28], &device);
    let t = [900, 500, 200, 50];
    let whole =
        ExactDenoiser::with_chunk(&images, [1, 28, 28], schedule.clone(), &device, 1000).unwrap();
    let chunked = ExactDenoiser::with_chunk(&images, [1, 28, 28], schedule, &device, 7).unwrap();
    let a = to_vec(whole.predict_x0(x_t.clone(), &t).unwrap()).unwrap();
    let b = to_vec(chunked.predict_x0(x_t, &t).unwrap()).unwrap();
    let d = crate::common::max_abs_diff(&a, &b);
    assert!(d < 1e-4, "chunked result differs by {d}");
}

#[test]
fn ten_thousand_digits_fit() {
    let device = crate::common::flex();
    let schedule = Arc::new(NoiseSchedule::new(ScheduleConfig::default()).unwrap());
    let mnist = Mnist::embedded().unwrap();
    assert_eq!(mnist.len(), 10_000);
    let images = mnist.images(10_000);
    let model = ExactDenoiser::new(&images, [1, 28, 28], schedule, &device).unwrap();
    let x_t = initial_noise(1, [2, 1, 28, 28], &device);
    let pred = to_vec(model.predict_x0(x_t, &[500, 500]).unwrap()).unwrap();
    assert!(pred.iter().all(|v| v.is_finite()));
    assert!(pred.iter().any(|v| *v > 0.0));
}

/// The solvers after DDIM on the exact (memorising) denoiser land on a training digit, within
/// 1e-3 RMS, at 20 model evaluations: DPM-Solver++ 2M (20 steps) and Heun (10 steps, 19 NFE).
#[test]
fn solvers_on_the_exact_denoiser_land_on_training_digits_at_20_nfe() {
    use burn::tensor::Tensor;
    use difflab::diffusion::Denoiser;
    use difflab::diffusion::solvers::{SolverKind, SolverSpec, solve};
    let device = crate::common::flex();
    let mnist = Mnist::embedded().unwrap();
    let images = mnist.images(100);
    let schedule = std::sync::Arc::new(
        difflab::diffusion::NoiseSchedule::new(ScheduleConfig::default()).unwrap(),
    );
    let model = ExactDenoiser::new(&images, [1, 28, 28], schedule, &device).unwrap();
    for (kind, steps) in [(SolverKind::DpmSolverPlusPlus, 20), (SolverKind::Heun, 10)] {
        let spec = SolverSpec {
            kind,
            order: None,
            karras: false,
        };
        let mut solver = spec
            .build(&ScheduleConfig::default(), model.prediction_type(), steps)
            .unwrap();
        assert!(solver.call_timesteps().len() <= 20, "{kind:?}");
        let x_t = initial_noise(5, [4, 1, 28, 28], &device);
        let x = solve(
            &model,
            solver.as_mut(),
            x_t,
            |_, s| Tensor::zeros(s, &device),
            |_, _| {},
        )
        .unwrap();
        let out = to_vec(x).unwrap();
        for (i, sample) in out.chunks(784).enumerate() {
            let nearest = images
                .iter()
                .map(|img| {
                    (img.iter()
                        .zip(sample)
                        .map(|(a, b)| f64::from(a - b).powi(2))
                        .sum::<f64>()
                        / 784.0)
                        .sqrt()
                })
                .fold(f64::INFINITY, f64::min);
            assert!(
                nearest < 1e-3,
                "{kind:?}, sample {i}: RMS {nearest} to the nearest digit"
            );
        }
    }
}
