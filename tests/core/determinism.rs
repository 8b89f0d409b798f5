//! Seeded noise, interpolation and the forward process, on flex and wgpu.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use difflab::data::mnist::Mnist;
use difflab::diffusion::noise::{gaussian, norm};
use difflab::diffusion::{
    NoiseSchedule, PredictionType, SamplerKind, ScheduleConfig, Scheduler, SchedulerConfig,
    VarianceType, initial_noise, lerp, q_posterior, q_sample, q_step, sample_loop, slerp,
    step_noise,
};
use difflab::model::ExactDenoiser;
use difflab::tensor_util::{tensor4, to_vec};

#[test]
fn seed_7_is_the_same_image_on_flex_and_wgpu() {
    let flex = to_vec(initial_noise(7, [2, 3, 16, 16], &crate::common::flex())).unwrap();
    // The documented stream: item 0 is seed 7, item 1 is seed 8.
    assert_eq!(&flex[..768], gaussian(7, 0, 768).as_slice());
    assert_eq!(&flex[768..], gaussian(8, 0, 768).as_slice());
    if let Some(wgpu) = crate::common::wgpu() {
        let w = to_vec(initial_noise(7, [2, 3, 16, 16], &wgpu)).unwrap();
        assert!(crate::common::max_abs_diff(&flex, &w) == 0.0);
    }
}

fn sample_on(device: &burn::tensor::Device, sampler: SamplerKind, seed: u64) -> Vec<f32> {
    let config = SchedulerConfig {
        prediction_type: PredictionType::Sample,
        num_inference_steps: 20,
        sampler,
        ..SchedulerConfig::default()
    };
    let sched = Scheduler::new(config).unwrap();
    let mnist = Mnist::embedded().unwrap();
    let model = ExactDenoiser::new(
        &mnist.images(64),
        [1, 28, 28],
        sched.schedule().clone(),
        device,
    )
    .unwrap();
    let cancel = AtomicBool::new(false);
    let x0 = sample_loop(
        &model,
        &sched,
        initial_noise(seed, [3, 1, 28, 28], device),
        |k, s| step_noise(seed, k, s, device),
        &cancel,
        |_| {},
    )
    .unwrap()
    .unwrap();
    to_vec(x0).unwrap()
}

#[test]
fn same_seed_gives_same_samples_on_flex_and_wgpu() {
    let ddim = SamplerKind::Ddim {
        eta: 0.0,
        set_alpha_to_one: true,
    };
    let ddpm = SamplerKind::Ddpm {
        variance: VarianceType::FixedSmall,
    };
    for sampler in [ddim, ddpm] {
        let a = sample_on(&crate::common::flex(), sampler, 42);
        let b = sample_on(&crate::common::flex(), sampler, 42);
        assert_eq!(a, b, "{sampler:?} is not deterministic on flex");
        if let Some(w) = crate::common::wgpu() {
            let c = sample_on(&w, sampler, 42);
            let d = crate::common::max_abs_diff(&a, &c);
            assert!(d < 1e-4, "{sampler:?}: flex and wgpu differ by {d}");
        }
    }
}

#[test]
fn eta_zero_is_deterministic_across_reruns_and_seeds_differ() {
    let ddim = SamplerKind::Ddim {
        eta: 0.0,
        set_alpha_to_one: true,
    };
    let a = sample_on(&crate::common::flex(), ddim, 1);
    // Rerun: bit for bit the same samples.
    let again = sample_on(&crate::common::flex(), ddim, 1);
    assert_eq!(a, again, "η = 0 gave different samples on a rerun");
    let b = sample_on(&crate::common::flex(), ddim, 2);
    assert!(
        crate::common::max_abs_diff(&a, &b) > 0.1,
        "different seeds gave the same samples"
    );
}

#[test]
fn slerp_keeps_the_noise_norm_and_lerp_dips() {
    let a = gaussian(1, 0, 4096);
    let b = gaussian(2, 0, 4096);
    let (na, nb) = (norm(&a), norm(&b));
    for i in 0..=10 {
        let alpha = f64::from(i) / 10.0;
        let s = norm(&slerp(&a, &b, alpha));
        let expected = (1.0 - alpha) * na + alpha * nb;
        assert!(
            (s - expected).abs() / expected < 0.01,
            "α={alpha}: slerp norm {s} vs {expected}"
        );
    }
    let mid = norm(&lerp(&a, &b, 0.5));
    // Independent noises are nearly orthogonal: ‖(a+b)/2‖ ≈ ‖a‖/√2.
    assert!(mid < 0.75 * na, "lerp midpoint norm {mid} vs {na}");
}

#[test]
fn cancel_stops_between_steps() {
    let device = crate::common::flex();
    let config = SchedulerConfig {
        prediction_type: PredictionType::Sample,
        num_inference_steps: 30,
        ..SchedulerConfig::default()
    };
    let sched = Scheduler::new(config).unwrap();
    let mnist = Mnist::embedded().unwrap();
    let model = ExactDenoiser::new(
        &mnist.images(8),
        [1, 28, 28],
        sched.schedule().clone(),
        &device,
    )
    .unwrap();
    let cancel = AtomicBool::new(false);
    let mut seen = Vec::new();
    let out = sample_loop(
        &model,
        &sched,
        initial_noise(0, [1, 1, 28, 28], &device),
        |k, s| step_noise(0, k, s, &device),
        &cancel,
        |f| {
            seen.push(f.t);
            if f.index == 9 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
    )
    .unwrap();
    assert!(out.is_none());
    assert_eq!(seen.len(), 10);
    assert_eq!(seen, sched.timesteps()[..10].to_vec());
}

#[test]
fn q_sample_matches_its_formula_per_item() {
    let device = crate::common::flex();
    let s = NoiseSchedule::new(ScheduleConfig::default()).unwrap();
    let x0: Vec<f32> = (0..2 * 4).map(|i| i as f32 / 8.0 - 0.5).collect();
    let eps = gaussian(3, 0, 8);
    let t = [10, 900];
    let out = to_vec(
        q_sample(
            &s,
            tensor4(x0.clone(), [2, 1, 2, 2], &device),
            &t,
            tensor4(eps.clone(), [2, 1, 2, 2], &device),
        )
        .unwrap(),
    )
    .unwrap();
    for i in 0..8 {
        let tt = t[i / 4];
        let want = s.sqrt_alphas_cumprod[tt] * f64::from(x0[i])
            + s.sqrt_one_minus_alphas_cumprod[tt] * f64::from(eps[i]);
        assert!((f64::from(out[i]) - want).abs() < 1e-6, "item {i}");
    }
    assert!(
        q_sample(
            &s,
            tensor4(x0, [2, 1, 2, 2], &device),
            &[1000, 0],
            tensor4(eps, [2, 1, 2, 2], &device)
        )
        .is_err()
    );
}

#[test]
fn markov_chain_agrees_with_one_shot_in_distribution() {
    // Walk x_t = √(1−β_t)·x_{t−1} + √β_t·z for t = 0..T−1 from a constant image: the mean must be
    // √ᾱ_t·x_0 and the variance 1 − ᾱ_t, as q(x_t | x_0) says.
    let device = crate::common::flex();
    let s = NoiseSchedule::new(ScheduleConfig::default()).unwrap();
    let n = 20_000;
    let x0 = 0.8f32;
    let mut x = tensor4(vec![x0; n], [1, 1, 1, n], &device);
    let stop = 300;
    for t in 0..=stop {
        x = q_step(
            &s,
            x,
            t,
            tensor4(gaussian(9, t as u64, n), [1, 1, 1, n], &device),
        )
        .unwrap();
    }
    let v = to_vec(x).unwrap();
    let mean = v.iter().map(|x| f64::from(*x)).sum::<f64>() / n as f64;
    let var = v
        .iter()
        .map(|x| (f64::from(*x) - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let want_mean = s.sqrt_alphas_cumprod[stop] * f64::from(x0);
    let want_var = 1.0 - s.alphas_cumprod[stop];
    assert!(
        (mean - want_mean).abs() < 0.02,
        "mean {mean} vs {want_mean}"
    );
    assert!((var - want_var).abs() < 0.03, "var {var} vs {want_var}");
}

#[test]
fn q_posterior_is_the_bayes_combination() {
    let device = crate::common::flex();
    let s = Arc::new(NoiseSchedule::new(ScheduleConfig::default()).unwrap());
    let t = 500;
    let x0 = tensor4(vec![0.5; 4], [1, 1, 2, 2], &device);
    let xt = tensor4(vec![-0.25; 4], [1, 1, 2, 2], &device);
    let p = q_posterior(&s, x0, xt, &[t]).unwrap();
    let m = to_vec(p.mean).unwrap();
    let ab = s.alphas_cumprod[t];
    let abp = s.alphas_cumprod[t - 1];
    let want = abp.sqrt() * s.betas[t] / (1.0 - ab) * 0.5
        + s.alphas[t].sqrt() * (1.0 - abp) / (1.0 - ab) * -0.25;
    assert!((f64::from(m[0]) - want).abs() < 1e-6);
    assert!((p.variance[0] - (1.0 - abp) / (1.0 - ab) * s.betas[t]).abs() < 1e-12);
}

/// The chain's checkpoints and frontier never change the result: x after k steps equals a
/// plain walk of k q_steps with the documented per-step noise, in any order of requests.
#[test]
fn forward_chain_matches_a_plain_walk_in_any_order() {
    use difflab::diffusion::{ForwardChain, chain_noise, q_step};
    use std::sync::atomic::AtomicBool;

    let device = crate::common::flex();
    let schedule = std::sync::Arc::new(
        difflab::diffusion::NoiseSchedule::new(difflab::diffusion::ScheduleConfig::default())
            .expect("schedule"),
    );
    let shape = [1, 3, 8, 8];
    let x0 = difflab::diffusion::initial_noise(11, shape, &device).tanh();
    let plain = |steps: usize| {
        let mut x = x0.clone();
        for k in 0..steps {
            x = q_step(&schedule, x, k, chain_noise(5, k, shape, &device)).expect("step");
        }
        difflab::tensor_util::to_vec(x).expect("values")
    };
    let mut chain = ForwardChain::new(schedule.clone(), x0.clone(), 5);
    let go = AtomicBool::new(false);
    for steps in [37, 12, 80, 80, 26, 0, 1000] {
        let got = chain
            .state_after(steps, &go)
            .expect("walk")
            .expect("not cancelled");
        let got = difflab::tensor_util::to_vec(got).expect("values");
        assert_eq!(got, plain(steps), "after {steps} steps");
    }
    // A cancelled walk returns nothing and loses nothing.
    let mut fresh = ForwardChain::new(schedule.clone(), x0.clone(), 5);
    let stop = AtomicBool::new(true);
    assert!(
        fresh.state_after(300, &stop).expect("walk").is_none(),
        "cancelled"
    );
    let got = fresh.state_after(300, &go).expect("walk").expect("done");
    assert_eq!(
        difflab::tensor_util::to_vec(got).expect("values"),
        plain(300)
    );
}
