//! Flow matching (src/diffusion/flow_matching.rs): the straight path and its velocity, Euler
//! sampling against an exact velocity field, path straightness, and flow models in the CLI.

use burn::tensor::{Device, Tensor};
use difflab::diffusion::flow_matching::{
    flow_euler, flow_interpolate, flow_sigma_of, flow_target, flow_timestep, flow_x0_and_eps,
    path_straightness,
};
use difflab::diffusion::{Denoiser, PredictionType};
use difflab::error::Result;
use difflab::tensor_util::{tensor4, to_vec};

use crate::cli::{assert_bad_input, difflab, stderr};

fn flex() -> Device {
    crate::common::flex()
}

/// The exact velocity field of data that is one point `x0`: on x_σ = (1 − σ)·x0 + σ·ε the
/// velocity ε − x0 is (x − x0)/σ, with σ read back from the model's timestep t = σ·T.
struct OnePoint {
    x0: [f32; 2],
    t_max: usize,
}

impl Denoiser for OnePoint {
    fn prediction_type(&self) -> PredictionType {
        PredictionType::Flow
    }
    fn sample_shape(&self) -> [usize; 3] {
        [2, 1, 1]
    }
    fn forward(&self, x: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        let n = x.dims()[0];
        let v: Vec<f32> = to_vec(x)?
            .chunks(2)
            .zip(timesteps)
            .flat_map(|(p, &t)| {
                // t = min(round(σ·T), T − 1): σ = 1 at the top is read as (T − 1)/T, which
                // the test allows for below.
                let sigma = t as f32 / self.t_max as f32;
                [(p[0] - self.x0[0]) / sigma, (p[1] - self.x0[1]) / sigma]
            })
            .collect();
        Ok(tensor4(v, [n, 2, 1, 1], &flex()))
    }
    fn name(&self) -> String {
        "one point".into()
    }
}

#[test]
fn the_straight_path_and_its_velocity() {
    let x0 = tensor4(vec![1.0, -2.0, 0.5, 0.25], [2, 2, 1, 1], &flex());
    let eps = tensor4(vec![0.0, 1.0, -1.0, 2.0], [2, 2, 1, 1], &flex());
    // σ = 0 is the data, σ = 1 the noise, σ = 0.25 a quarter of the way.
    let x = to_vec(flow_interpolate(x0.clone(), eps.clone(), &[0.0, 0.25])).unwrap();
    assert_eq!(x[..2], [1.0, -2.0]);
    assert_eq!(x[2..], [0.5 * 0.75 - 0.25, 0.25 * 0.75 + 0.5]);
    let v = flow_target(x0.clone(), eps.clone());
    assert_eq!(to_vec(v.clone()).unwrap(), [-1.0, 3.0, -1.5, 1.75]);
    // x̂0 and ε̂ from v at x_σ give x0 and ε back.
    let sigma = 0.3;
    let x = flow_interpolate(x0.clone(), eps.clone(), &[sigma, sigma]);
    let (x0_hat, eps_hat) = flow_x0_and_eps(v, x, sigma);
    for (a, b) in to_vec(x0_hat).unwrap().iter().zip(to_vec(x0).unwrap()) {
        assert!((a - b).abs() < 1e-6);
    }
    for (a, b) in to_vec(eps_hat).unwrap().iter().zip(to_vec(eps).unwrap()) {
        assert!((a - b).abs() < 1e-6);
    }
    // The training σ of index i is (i + 1)/T, and the model is called at t = σ·T (the top
    // two share T − 1).
    assert_eq!(flow_sigma_of(0, 1000), 0.001);
    assert_eq!(flow_timestep(flow_sigma_of(0, 1000), 1000), 1);
    assert_eq!(flow_timestep(flow_sigma_of(499, 1000), 1000), 500);
    assert_eq!(flow_timestep(1.0, 1000), 999);
}

#[test]
fn euler_on_an_exact_straight_flow_lands_on_the_point_in_one_step() {
    let model = OnePoint {
        x0: [0.5, -1.5],
        t_max: 1000,
    };
    let z = tensor4(vec![2.0, 1.0, -1.0, 0.0], [2, 2, 1, 1], &flex());
    for steps in [1, 2, 5, 20] {
        let states = flow_euler(&model, z.clone(), steps, 1000).unwrap();
        assert_eq!(states.len(), steps + 1);
        let end = to_vec(states[steps].clone()).unwrap();
        // The first step reads σ = 1 as 0.999 (t = T − 1): a 0.1% overshoot at most.
        for (i, v) in end.iter().enumerate() {
            let want = model.x0[i % 2];
            assert!((v - want).abs() < 5e-3, "{steps} steps: {end:?}");
        }
        // Every state lies on the straight line from z to x0.
        let frames: Vec<Vec<[f32; 2]>> = states
            .iter()
            .map(|s| {
                to_vec(s.clone())
                    .unwrap()
                    .chunks(2)
                    .map(|c| [c[0], c[1]])
                    .collect()
            })
            .collect();
        let s = path_straightness(&frames).unwrap();
        assert!((s - 1.0).abs() < 1e-3, "{steps} steps: straightness {s}");
    }
    assert!(flow_euler(&model, z, 0, 1000).is_err());
}

#[test]
fn straightness_is_one_for_lines_and_more_for_detours() {
    let line = vec![vec![[0.0, 0.0]], vec![[1.0, 0.0]], vec![[2.0, 0.0]]];
    assert_eq!(path_straightness(&line), Some(1.0));
    // Out along x and back up: length 2 for a distance of √2.
    let corner = vec![vec![[0.0, 0.0]], vec![[1.0, 0.0]], vec![[1.0, 1.0]]];
    let s = path_straightness(&corner).unwrap();
    assert!((s - 2.0 / 2f64.sqrt()).abs() < 1e-6, "{s}");
    // Paths that do not move have no straightness.
    assert_eq!(
        path_straightness(&[vec![[1.0, 1.0]], vec![[1.0, 1.0]]]),
        None
    );
    assert_eq!(path_straightness(&[]), None);
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("difflab-flow-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn flow_models_sample_with_flow_euler_only() {
    let flow = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/models/mnist-flow-unet.safetensors"
    );
    let dir = tmp("sample");
    let png = dir.join("flow.png");
    let o = difflab(&[
        "sample",
        "--model",
        "unet",
        "--weights",
        flow,
        "--sampler",
        "flow-euler",
        "--steps",
        "5",
        "--count",
        "2",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Flow Euler, 5 steps, 5 model evaluations"),
        "{}",
        stderr(&o)
    );
    assert!(png.is_file());
    // Guided towards a digit, as any sampler (--label with a solver after DDIM).
    let o = difflab(&[
        "sample",
        "--model",
        "unet",
        "--weights",
        flow,
        "--sampler",
        "flow-euler",
        "--label",
        "7",
        "--steps",
        "5",
        "--count",
        "2",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("guidance w = 2"), "{}", stderr(&o));
    // The flow net with DDPM/DDIM or a σ solver, the diffusion net with flow-euler: one line,
    // exit 2, nothing written.
    let bad = dir.join("bad.png");
    let out = bad.to_str().unwrap();
    for s in ["ddim", "ddpm", "euler", "dpm-solver++"] {
        assert_bad_input(
            &[
                "sample",
                "--model",
                "unet",
                "--weights",
                flow,
                "--sampler",
                s,
                "--count",
                "1",
                "-o",
                out,
            ],
            "flow-matching model",
        );
    }
    assert_bad_input(
        &[
            "sample",
            "--model",
            "unet",
            "--sampler",
            "flow-euler",
            "--count",
            "1",
            "-o",
            out,
        ],
        "flow-euler samples flow-matching models",
    );
    assert!(!bad.exists());
    // `timesteps` lists flow matching's calls: σ from 1 down, t = σ·T.
    let o = difflab(&["timesteps", "--sampler", "flow-euler", "--steps", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nfe"], 4);
    assert_eq!(v["calls"][0]["sigma"], 1.0);
    assert_eq!(v["calls"][0]["t"], 1000.0);
    // Training: --objective flow takes no v-prediction and no Min-SNR weighting.
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    assert_bad_input(
        &[
            "train",
            "--data",
            "mnist",
            "--objective",
            "flow",
            "--prediction",
            "v",
            "--steps",
            "1",
            "--out",
            r,
        ],
        "--objective flow predicts the velocity",
    );
    assert_bad_input(
        &[
            "train",
            "--data",
            "mnist",
            "--objective",
            "flow",
            "--min-snr-gamma",
            "5",
            "--steps",
            "1",
            "--out",
            r,
        ],
        "--min-snr-gamma",
    );
    assert!(!run.exists());
    std::fs::remove_dir_all(&dir).ok();
}
