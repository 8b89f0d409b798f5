//! The solvers after DDIM against diffusers 0.42.1's own runs (`solver_loops.json`: in
//! `../shared/golden-solvers` beside the clone, else the copy in `tests/golden/`; with
//! `$DIFFLAB_GOLDEN_DIR` set, golden.rs checks the one there too). Every case: the scheduler's
//! timesteps and σ, x after every model call, and the final sample, within 1e-4. A case whose
//! scheduler or option difflab does not implement fails (no silent skip).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use difflab::diffusion::solvers::{Solver, from_diffusers};
use difflab::tensor_util::{tensor4, to_vec};
use serde_json::Value;

const ABS_TOL: f64 = 1e-4;

fn solver_file() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../shared/golden-solvers/solver_loops.json");
    if shared.is_file() {
        shared
    } else {
        manifest.join("tests/golden/solver_loops.json")
    }
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().expect("number")).collect())
        .unwrap_or_default()
}

/// The first place `ours` and `theirs` differ by more than the tolerance, as a message.
fn mismatch(what: &str, ours: &[f64], theirs: &[f64]) -> Option<String> {
    if ours.len() != theirs.len() {
        return Some(format!(
            "{what}: {} values, diffusers has {} (ours {ours:?}, theirs {theirs:?})",
            ours.len(),
            theirs.len()
        ));
    }
    ours.iter()
        .zip(theirs)
        .enumerate()
        .find(|(_, (a, b))| (*a - *b).abs() > ABS_TOL || a.is_nan())
        .map(|(i, (a, b))| format!("{what}[{i}]: ours {a}, diffusers {b}"))
}

/// diffusers' scheduler-test model: out(x, t) = x·t/(t + 1).
fn model(x: Tensor<4>, t: f64) -> Tensor<4> {
    x.mul_scalar((t / (t + 1.0)) as f32)
}

/// Runs one case; `Err` says where it first differs.
pub fn run_case(c: &Value, device: &Device) -> Result<(), String> {
    let scheduler = c["scheduler"].as_str().ok_or("no scheduler")?;
    let n = c["num_inference_steps"]
        .as_u64()
        .ok_or("no num_inference_steps")? as usize;
    let mut solver: Box<dyn Solver> =
        from_diffusers(scheduler, &c["config"], n).map_err(|e| e.to_string())?;
    if let Some(m) = mismatch("timesteps", &solver.timesteps(), &f64s(&c["timesteps"])) {
        return Err(m);
    }
    if c.get("sigmas").is_some_and(|s| !s.is_null())
        && let Some(m) = mismatch("sigmas", &solver.sigmas(), &f64s(&c["sigmas"]))
    {
        return Err(m);
    }
    let calls = solver.call_timesteps();
    if let Some(m) = mismatch("model_calls_t", &calls, &f64s(&c["model_calls_t"])) {
        return Err(m);
    }
    if let Some(s) = c.get("init_noise_sigma").and_then(Value::as_f64)
        && let Some(m) = mismatch("init_noise_sigma", &[solver.init_noise_sigma()], &[s])
    {
        return Err(m);
    }
    let shape = [1, 1, 4, 4];
    let mut x = tensor4(
        f64s(&c["x_T"]).iter().map(|v| *v as f32).collect(),
        shape,
        device,
    );
    let per_call = c["samples_per_call"]
        .as_array()
        .ok_or("no samples_per_call")?;
    let noises = c.get("noise_per_step").and_then(Value::as_array);
    for (k, t) in calls.iter().enumerate() {
        let out = model(solver.scale_model_input(x.clone(), k), *t);
        let noise = if solver.needs_noise(k) {
            let z = noises
                .and_then(|n| n.get(k))
                .ok_or(format!("call {k} needs noise and the case has none"))?;
            Some(tensor4(
                f64s(z).iter().map(|v| *v as f32).collect(),
                shape,
                device,
            ))
        } else {
            None
        };
        x = solver
            .step(out, k, x, noise)
            .map_err(|e| format!("call {k}: {e}"))?
            .prev_sample;
        let ours: Vec<f64> = to_vec(x.clone())
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(f64::from)
            .collect();
        let theirs = per_call.get(k).map(f64s).unwrap_or_default();
        if let Some(m) = mismatch(&format!("call {k} (t = {t}) sample"), &ours, &theirs) {
            return Err(m);
        }
    }
    let ours: Vec<f64> = to_vec(x)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(f64::from)
        .collect();
    match mismatch("final_sample", &ours, &f64s(&c["final_sample"])) {
        Some(m) => Err(m),
        None => Ok(()),
    }
}

/// Every case of `file`, all run; the failures listed together.
fn check_file(file: &std::path::Path, device_name: &str, device: &Device) -> usize {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let cases = v["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "no cases in {}", file.display());
    let mut failed = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let label = format!(
            "solver_loops.json#{i} {} {} N={} [{device_name}]",
            c["scheduler"].as_str().unwrap_or("?"),
            c["config"],
            c["num_inference_steps"]
        );
        match run_case(c, device) {
            Ok(()) => eprintln!("ok   {label}"),
            Err(e) => {
                eprintln!("FAIL {label}: {e}");
                failed.push(format!("{label}: {e}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} solver cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    cases.len()
}

#[test]
fn golden_solvers_match_diffusers_on_flex() {
    let n = check_file(&solver_file(), "flex", &crate::common::flex());
    eprintln!("{n} solver cases passed on flex");
}

#[test]
fn golden_solvers_match_diffusers_on_wgpu() {
    let Some(device) = crate::common::wgpu() else {
        return;
    };
    check_file(&solver_file(), "wgpu", &device);
}

/// A scheduler or an option difflab does not implement is an error, not a silent default.
#[test]
fn golden_solvers_refuse_what_they_do_not_implement() {
    let config = serde_json::json!({"num_train_timesteps": 1000});
    assert!(from_diffusers("lms_discrete", &config, 10).is_err());
    let odd = serde_json::json!({"num_train_timesteps": 1000, "rescale_betas_zero_snr": true});
    for s in [
        "euler",
        "euler_ancestral",
        "heun",
        "dpmsolver_multistep",
        "unipc_multistep",
    ] {
        let e = from_diffusers(s, &odd, 10).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("rescale_betas_zero_snr")),
            "{s}: {e:?}"
        );
    }
}
