//! The 2-D playground's core: datasets, the MLP trained as in DDPM Algorithm 1, the exact
//! denoiser over a point set, and a two-sample test (energy distance) against fresh data.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::Device;
use difflab::data::toy2d::{Toy2d, energy_distance, flatten};
use difflab::diffusion::{
    NoiseSchedule, PredictionType, SamplerKind, ScheduleConfig, Scheduler, SchedulerConfig,
    TimestepSpacing, sample_seeded,
};
use difflab::model::ExactDenoiser;
use difflab::model::toy_mlp::ToyMlpConfig;
use difflab::train::toy::{ToyTrainConfig, ToyTrainer, points_of};

fn schedule() -> Arc<NoiseSchedule> {
    Arc::new(NoiseSchedule::new(ScheduleConfig::default()).expect("schedule"))
}

fn ddim(prediction: PredictionType, steps: usize, spacing: TimestepSpacing) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        use_clipped_model_output: false,
        schedule: ScheduleConfig::default(),
        prediction_type: prediction,
        clip_sample: None,
        spacing,
        steps_offset: 0,
        num_inference_steps: steps,
        sampler: SamplerKind::Ddim {
            eta: 0.0,
            set_alpha_to_one: true,
        },
    })
    .expect("scheduler")
}

#[test]
fn datasets_are_seeded_and_centred() {
    for d in Toy2d::ALL {
        let a = d.sample(2000, 3).expect("points");
        assert_eq!(
            a,
            d.sample(2000, 3).expect("points"),
            "{}: seeded",
            d.name()
        );
        assert_ne!(
            a,
            d.sample(2000, 4).expect("points"),
            "{}: seeds differ",
            d.name()
        );
        let (mx, my) = a.iter().fold((0.0, 0.0), |(x, y), p| {
            (x + f64::from(p[0]), y + f64::from(p[1]))
        });
        let n = a.len() as f64;
        assert!(
            (mx / n).abs() < 0.2 && (my / n).abs() < 0.3,
            "{}: centred",
            d.name()
        );
        let e = energy_distance(&a, &d.sample(2000, 5).expect("points"), 800);
        assert!(e < 0.02, "{}: two draws agree ({e})", d.name());
    }
    assert!(Toy2d::SwissRoll.sample(0, 1).is_err());
}

/// Trains the MLP for 3000 steps on `data` and returns the energy distances to fresh data of
/// samples from the trained and from the untrained model, and of a second real draw.
fn quality(d: Toy2d, device: &Device) -> (f64, f64, f64) {
    let data = d.sample(10_000, 0).expect("data");
    let fresh = d.sample(1000, 99).expect("fresh");
    let mut trainer = ToyTrainer::new(
        data,
        schedule(),
        &ToyMlpConfig::new(),
        ToyTrainConfig::default(),
        device,
    )
    .expect("trainer");
    let untrained = trainer.model().expect("model");
    let started = Instant::now();
    for _ in 0..3000 {
        trainer.train_step().expect("step");
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(
        trainer.recent_loss(100) < trainer.losses[..20].iter().sum::<f32>() / 20.0,
        "{}: the loss falls",
        d.name()
    );
    let cancel = AtomicBool::new(false);
    let sched = ddim(PredictionType::Epsilon, 50, TimestepSpacing::Trailing);
    let sample = |m: &dyn difflab::model::Denoiser| {
        let x = sample_seeded(m, &sched, 1234, 1000, &cancel, device, |_| {})
            .expect("sample")
            .expect("not cancelled");
        points_of(x).expect("points")
    };
    let trained = energy_distance(&sample(&trainer.model().expect("model")), &fresh, 1000);
    let broken = energy_distance(&sample(&untrained), &fresh, 1000);
    let real = energy_distance(&d.sample(1000, 7).expect("data"), &fresh, 1000);
    eprintln!(
        "{:>13}: 3000 steps in {secs:.1} s ({:.0} steps/s), loss {:.3}; energy distance to fresh \
         data: trained {trained:.4}, untrained {broken:.4}, real {real:.4}",
        d.name(),
        3000.0 / secs,
        trainer.recent_loss(100)
    );
    (trained, broken, real)
}

#[test]
fn a_trained_mlp_samples_every_dataset_and_an_untrained_one_does_not() {
    let device = Device::flex();
    for d in Toy2d::ALL {
        let (trained, broken, real) = quality(d, &device);
        assert!(
            trained < 0.05,
            "{}: trained samples match the data: {trained} (real {real})",
            d.name()
        );
        assert!(
            broken > 0.2,
            "{}: an untrained model fails the same test: {broken}",
            d.name()
        );
    }
}

#[test]
fn training_is_deterministic() {
    let device = Device::flex();
    let data = Toy2d::TwoMoons.sample(2000, 1).expect("data");
    let run = || {
        let mut t = ToyTrainer::new(
            data.clone(),
            schedule(),
            &ToyMlpConfig::new().with_hidden(32),
            ToyTrainConfig {
                seed: 5,
                ..Default::default()
            },
            &device,
        )
        .expect("trainer");
        for _ in 0..30 {
            t.train_step().expect("step");
        }
        t.losses
    };
    assert_eq!(run(), run());
}

#[test]
fn the_exact_denoiser_with_eta_zero_lands_on_the_data_points() {
    let device = Device::flex();
    // A small set whose points are at least 0.15 apart: the exact denoiser memorises them,
    // and no two blend at the last step (where √(1−ᾱ_0) = 0.01).
    let mut data: Vec<[f32; 2]> = Vec::new();
    for p in Toy2d::SwissRoll.sample(400, 2).expect("data") {
        if data
            .iter()
            .all(|q| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt() > 0.15)
        {
            data.push(p);
        }
    }
    let min_gap = 0.15;
    // With η = 0 and all 1000 steps DDIM follows the probability-flow ODE closely enough to end
    // on a point; with few steps the last, coarse steps can leave a sample between two points.
    eprintln!("closest pair of data points: {min_gap:.3}");
    let images: Vec<Vec<f32>> = data.iter().map(|p| p.to_vec()).collect();
    let model = ExactDenoiser::new(&images, [2, 1, 1], schedule(), &device).expect("exact");
    let cancel = AtomicBool::new(false);
    let x = sample_seeded(
        &model,
        &ddim(PredictionType::Sample, 1000, TimestepSpacing::Leading),
        3,
        300,
        &cancel,
        &device,
        |_| {},
    )
    .expect("sample")
    .expect("done");
    let pts = points_of(x).expect("points");
    let flat = flatten(&data);
    let (mut worst, mut total) = (0.0f32, 0.0f32);
    for p in &pts {
        let nearest = flat
            .chunks(2)
            .map(|q| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
            .fold(f32::INFINITY, f32::min);
        // The last step predicts x_0 at t = 0, where the noise left is √(1−ᾱ_0) = 0.01: two
        // data points closer than that may blend.
        assert!(
            nearest < 0.01,
            "{p:?} is {nearest} from the nearest data point"
        );
        worst = worst.max(nearest);
        total += nearest;
    }
    let mean = total / pts.len() as f32;
    eprintln!("distance to the nearest data point: mean {mean:.2e}, worst {worst:.2e}");
    assert!(mean < 1e-4, "on average they land on the points: {mean}");
}
