//! Golden vectors from Hugging Face diffusers (`../shared/golden`, or `$DIFFLAB_GOLDEN_DIR`).
//!
//! Every JSON file in the folder is read and every case is checked; the kind of a case is told by
//! its keys, so new files with the same layout are picked up without code changes. Steps and
//! loops run on flex and on wgpu (lavapipe in CI).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::{Device, Tensor};
use difflab::diffusion::{
    BetaSchedule, NoiseSchedule, PredictionType, SamplerKind, ScheduleConfig, Scheduler,
    SchedulerConfig, TimestepSpacing, VarianceType, sample_loop, timesteps,
};
use difflab::model::Denoiser;
use difflab::tensor_util::{tensor4, to_vec};
use serde_json::Value;

const SCHEDULE_REL_TOL: f64 = 2e-5;
const SAMPLE_ABS_TOL: f32 = 1e-4;

/// `$DIFFLAB_GOLDEN_DIR`, else `../shared/golden` beside the clone, else the copy of the same
/// files in `tests/golden/` (for a clone with no shared folder beside it).
fn golden_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var_os("DIFFLAB_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None if manifest.join("../shared/golden").is_dir() => manifest.join("../shared/golden"),
        None => manifest.join("tests/golden"),
    };
    eprintln!("golden vectors from {}", dir.display());
    dir
}

/// Every case of every JSON file, with "file#index" names.
fn all_cases() -> Vec<(String, Value)> {
    let dir = golden_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the golden folder {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no JSON files in {}", dir.display());
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for (i, c) in v["cases"].as_array().expect("cases").iter().enumerate() {
            out.push((format!("{name}#{i}"), c.clone()));
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Kind {
    Schedule,
    Timesteps,
    DdimStep,
    DdpmStep,
    DdimLoop,
    DdpmLoop,
    /// A whole run of a solver after DDIM (`solver_loops.json`; golden_solvers.rs runs it).
    SolverLoop,
}

fn kind(c: &Value) -> Kind {
    let has = |k: &str| c.get(k).is_some();
    if has("scheduler") {
        Kind::SolverLoop
    } else if has("betas") || (has("alphas_cumprod") && !has("sample")) {
        Kind::Schedule
    } else if has("x_T") {
        if has("eta") {
            Kind::DdimLoop
        } else {
            Kind::DdpmLoop
        }
    } else if has("sample") {
        if has("eta") || has("set_alpha_to_one") {
            Kind::DdimStep
        } else {
            Kind::DdpmStep
        }
    } else if has("timesteps") && has("timestep_spacing") {
        Kind::Timesteps
    } else {
        panic!("unrecognised golden case: {c}")
    }
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

fn usize_of(c: &Value, k: &str, default: usize) -> usize {
    c.get(k)
        .and_then(Value::as_u64)
        .map_or(default, |x| x as usize)
}

fn f64_of(c: &Value, k: &str, default: f64) -> f64 {
    c.get(k).and_then(Value::as_f64).unwrap_or(default)
}

fn bool_of(c: &Value, k: &str, default: bool) -> bool {
    c.get(k).and_then(Value::as_bool).unwrap_or(default)
}

fn str_of<'a>(c: &'a Value, k: &str, default: &'a str) -> &'a str {
    c.get(k).and_then(Value::as_str).unwrap_or(default)
}

fn shape4(c: &Value) -> [usize; 4] {
    let s: Vec<usize> = c["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    [s[0], s[1], s[2], s[3]]
}

/// diffusers' defaults for anything a case leaves out.
fn schedule_config(c: &Value) -> ScheduleConfig {
    ScheduleConfig {
        kind: BetaSchedule::parse(str_of(c, "beta_schedule", "linear")).unwrap(),
        num_train_timesteps: usize_of(c, "num_train_timesteps", 1000),
        beta_start: f64_of(c, "beta_start", 1e-4),
        beta_end: f64_of(c, "beta_end", 0.02),
    }
}

fn scheduler(c: &Value, ddim: bool) -> Scheduler {
    let schedule = schedule_config(c);
    let sampler = if ddim {
        SamplerKind::Ddim {
            eta: f64_of(c, "eta", 0.0),
            set_alpha_to_one: bool_of(c, "set_alpha_to_one", true),
        }
    } else {
        SamplerKind::Ddpm {
            variance: VarianceType::parse(str_of(c, "variance_type", "fixed_small")).unwrap(),
        }
    };
    let config = SchedulerConfig {
        use_clipped_model_output: false,
        schedule,
        prediction_type: PredictionType::parse(str_of(c, "prediction_type", "epsilon")).unwrap(),
        clip_sample: bool_of(c, "clip_sample", true).then(|| f64_of(c, "clip_sample_range", 1.0)),
        spacing: TimestepSpacing::parse(str_of(c, "timestep_spacing", "leading")).unwrap(),
        steps_offset: usize_of(c, "steps_offset", 0),
        num_inference_steps: usize_of(c, "num_inference_steps", schedule.num_train_timesteps),
        sampler,
    };
    Scheduler::new(config).unwrap()
}

fn check_schedule(name: &str, c: &Value) {
    let s = NoiseSchedule::new(schedule_config(c)).unwrap();
    for (key, ours) in [("betas", &s.betas), ("alphas_cumprod", &s.alphas_cumprod)] {
        let Some(theirs) = c.get(key) else { continue };
        let theirs = f64s(theirs);
        assert_eq!(theirs.len(), ours.len(), "{name}: {key} length");
        for (t, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let tol = SCHEDULE_REL_TOL * b.abs() + 1e-12;
            assert!(
                (a - b).abs() <= tol,
                "{name}: {key}[{t}] = {a}, diffusers {b}"
            );
        }
    }
}

/// The schedule also survives the trip to each device and back.
fn check_schedule_on_device(name: &str, c: &Value, device: &Device) {
    let s = NoiseSchedule::new(schedule_config(c)).unwrap();
    let theirs = f32s(&c["alphas_cumprod"]);
    let n = theirs.len();
    let ours: Vec<f32> = s.alphas_cumprod.iter().map(|x| *x as f32).collect();
    let back = to_vec(tensor4(ours, [1, 1, 1, n], device)).unwrap();
    for (t, (a, b)) in back.iter().zip(&theirs).enumerate() {
        assert!(
            (a - b).abs() <= SCHEDULE_REL_TOL as f32 * b.abs() + 1e-12,
            "{name} on device: alphas_cumprod[{t}] = {a}, diffusers {b}"
        );
    }
}

fn check_timesteps(name: &str, c: &Value) {
    let spacing = TimestepSpacing::parse(str_of(c, "timestep_spacing", "leading")).unwrap();
    let ours = timesteps(
        spacing,
        usize_of(c, "num_train_timesteps", 1000),
        usize_of(c, "num_inference_steps", 0),
        usize_of(c, "steps_offset", 0),
    )
    .unwrap();
    let theirs: Vec<usize> = f64s(&c["timesteps"]).iter().map(|x| *x as usize).collect();
    assert_eq!(ours, theirs, "{name}");
}

fn assert_close(name: &str, what: &str, ours: &[f32], theirs: &[f32]) {
    let d = crate::common::max_abs_diff(ours, theirs);
    assert!(
        d <= SAMPLE_ABS_TOL,
        "{name}: {what} differs by {d}\n ours   {ours:?}\n theirs {theirs:?}"
    );
}

fn check_step(name: &str, c: &Value, ddim: bool, device: &Device) {
    let sched = scheduler(c, ddim);
    let shape = shape4(c);
    let sample = tensor4(f32s(&c["sample"]), shape, device);
    let output = tensor4(f32s(&c["model_output"]), shape, device);
    let t = usize_of(c, "timestep", 0);
    let noise = c
        .get("variance_noise")
        .map(|v| tensor4(f32s(v), shape, device));
    let out = sched.step(output, t, sample, noise).unwrap();
    let prev = to_vec(out.prev_sample.clone()).unwrap();
    assert_close(name, "prev_sample", &prev, &f32s(&c["prev_sample"]));
    assert_close(
        name,
        "pred_original_sample",
        &to_vec(out.pred_original_sample).unwrap(),
        &f32s(&c["pred_original_sample"]),
    );
    if let Some(terms) = out.ddim_terms {
        // The three DDIM terms add up to x_{t−1}.
        let sum = terms.x0_term + terms.direction_term + terms.noise_term;
        assert_close(name, "sum of DDIM terms", &to_vec(sum).unwrap(), &prev);
    }
}

/// The loops' test model: ε(x, t) = x·t/(t + 1).
struct ToyModel([usize; 3]);

impl Denoiser for ToyModel {
    fn prediction_type(&self) -> PredictionType {
        PredictionType::Epsilon
    }
    fn sample_shape(&self) -> [usize; 3] {
        self.0
    }
    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> difflab::Result<Tensor<4>> {
        let t = timesteps[0] as f32;
        Ok(x_t.mul_scalar(t / (t + 1.0)))
    }
    fn name(&self) -> String {
        "x·t/(t+1)".into()
    }
}

fn check_loop(name: &str, c: &Value, ddim: bool, device: &Device) {
    let sched = scheduler(c, ddim);
    if let Some(ts) = c.get("timesteps") {
        let theirs: Vec<usize> = f64s(ts).iter().map(|x| *x as usize).collect();
        assert_eq!(sched.timesteps(), theirs.as_slice(), "{name}: timesteps");
    }
    let shape = shape4(c);
    let model = ToyModel([shape[1], shape[2], shape[3]]);
    let per_step: Vec<Vec<f32>> = c["variance_noise_per_step"]
        .as_array()
        .map(|a| a.iter().map(f32s).collect())
        .unwrap_or_default();
    let x_t = tensor4(f32s(&c["x_T"]), shape, device);
    let cancel = AtomicBool::new(false);
    let mut steps = 0;
    let x0 = sample_loop(
        &model,
        &sched,
        x_t,
        |k, s| tensor4(per_step[k].clone(), s, device),
        &cancel,
        |_| steps += 1,
    )
    .unwrap()
    .unwrap();
    assert_eq!(steps, sched.timesteps().len(), "{name}: steps taken");
    assert_close(
        name,
        "final_sample",
        &to_vec(x0).unwrap(),
        &f32s(&c["final_sample"]),
    );
}

fn run_all(device_name: &str, device: &Device, kinds: &[Kind]) -> usize {
    let mut checked = 0;
    for (name, c) in all_cases() {
        let k = kind(&c);
        if !kinds.contains(&k) {
            continue;
        }
        let name = format!("{name} [{device_name}]");
        match k {
            Kind::Schedule => {
                check_schedule(&name, &c);
                check_schedule_on_device(&name, &c, device);
            }
            Kind::Timesteps => check_timesteps(&name, &c),
            Kind::DdimStep => check_step(&name, &c, true, device),
            Kind::DdpmStep => check_step(&name, &c, false, device),
            Kind::DdimLoop => check_loop(&name, &c, true, device),
            Kind::DdpmLoop => check_loop(&name, &c, false, device),
            Kind::SolverLoop => {
                if let Err(e) = crate::golden_solvers::run_case(&c, device) {
                    panic!("{name}: {e}");
                }
            }
        }
        checked += 1;
    }
    checked
}

const ALL_KINDS: [Kind; 7] = [
    Kind::Schedule,
    Kind::Timesteps,
    Kind::DdimStep,
    Kind::DdpmStep,
    Kind::DdimLoop,
    Kind::DdpmLoop,
    Kind::SolverLoop,
];

#[test]
fn every_golden_case_passes_on_flex() {
    let n = run_all("flex", &crate::common::flex(), &ALL_KINDS);
    assert!(n > 0, "no golden cases found");
    eprintln!("{n} golden cases passed on flex");
}

#[test]
fn every_golden_case_passes_on_wgpu() {
    let Some(device) = crate::common::wgpu() else {
        return;
    };
    let n = run_all("wgpu", &device, &ALL_KINDS);
    assert!(n > 0, "no golden cases found");
    eprintln!("{n} golden cases passed on wgpu");
}

#[test]
fn schedule_arc_reuse_matches_fresh_build() {
    let c = ScheduleConfig::new(BetaSchedule::Cosine, 1000);
    let s = Arc::new(NoiseSchedule::new(c).unwrap());
    let config = SchedulerConfig {
        schedule: c,
        ..SchedulerConfig::default()
    };
    let a = Scheduler::with_schedule(config, s).unwrap();
    let b = Scheduler::new(config).unwrap();
    assert_eq!(a.timesteps(), b.timesteps());
    assert_eq!(a.schedule().alphas_cumprod, b.schedule().alphas_cumprod);
}
