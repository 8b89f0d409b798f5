//! Flow matching and rectified flow (Lipman et al. 2023; Liu et al. 2023): the straight path
//! from data to noise, its velocity, Euler sampling, and how straight a sampled path is.
//!
//! x_σ = (1 − σ)·x_0 + σ·ε, σ ∈ [0, 1]; the model learns v(x_σ, σ) ≈ dx_σ/dσ = ε − x_0 and
//! samples by integrating dx/dσ = v from σ = 1 (pure noise) down to σ = 0. Reflow retrains on
//! pairs (ε, x_0) the first model itself connects, whose straight lines no longer cross, so the
//! paths straighten and a few Euler steps suffice. A model of timesteps 0 … T − 1 (the MLP's time
//! embedding) is called at [`flow_timestep`]`(σ)`.

use burn::tensor::Tensor;

use super::denoiser::Denoiser;
use crate::error::{DiffError, Result};

/// x_σ = (1 − σ)·x_0 + σ·ε, one σ per item (rectified flow's straight path).
pub fn flow_interpolate(x0: Tensor<4>, eps: Tensor<4>, sigma: &[f64]) -> Tensor<4> {
    let device = x0.device();
    let s: Vec<f32> = sigma.iter().map(|&s| s as f32).collect();
    let n = s.len();
    let s = Tensor::<1>::from_floats(s.as_slice(), &device).reshape([n, 1, 1, 1]);
    let one_minus = s.ones_like() - s.clone();
    x0 * one_minus + eps * s
}

/// The velocity the model learns: v = dx_σ/dσ = ε − x_0.
pub fn flow_target(x0: Tensor<4>, eps: Tensor<4>) -> Tensor<4> {
    eps - x0
}

/// The model's timestep for σ on T timesteps: t = σ·T, rounded, at most T − 1 (diffusers'
/// flow-matching convention, as the flow Euler solver calls a model; σ = 1 and σ = 1 − 1/T
/// share the last timestep).
pub fn flow_timestep(sigma: f64, t_max: usize) -> usize {
    ((sigma * t_max as f64).round().max(0.0) as usize).min(t_max.saturating_sub(1))
}

/// The σ a training item draws from its uniform index i ∈ 0 … T − 1: (i + 1)/T, the T training
/// σ of diffusers' flow-matching schedulers (1/T … 1); the model is called at
/// [`flow_timestep`] of it.
pub fn flow_sigma_of(i: usize, t_max: usize) -> f64 {
    (i + 1) as f64 / t_max as f64
}

/// A flow model's x̂0 and ε̂ from its velocity v at x_σ: x̂0 = x − σ·v, ε̂ = x + (1 − σ)·v
/// (x = (1 − σ)·x_0 + σ·ε and v = ε − x_0 solved for both).
pub fn flow_x0_and_eps(v: Tensor<4>, x: Tensor<4>, sigma: f64) -> (Tensor<4>, Tensor<4>) {
    let s = sigma as f32;
    (
        x.clone() - v.clone().mul_scalar(s),
        x + v.mul_scalar(1.0 - s),
    )
}

/// Euler's method on dx/dσ = v from σ = 1 (x = `z`) to σ = 0 in `steps` equal steps,
/// x ← x + (σ_next − σ)·v(x, σ): every state, z first, the sample last.
pub fn flow_euler(
    model: &dyn Denoiser,
    z: Tensor<4>,
    steps: usize,
    t_max: usize,
) -> Result<Vec<Tensor<4>>> {
    if steps == 0 {
        return Err(DiffError::invalid("flow sampling needs at least one step"));
    }
    let n = z.dims()[0];
    let mut states = Vec::with_capacity(steps + 1);
    let mut x = z;
    states.push(x.clone());
    for k in 0..steps {
        let sigma = 1.0 - k as f64 / steps as f64;
        let next = 1.0 - (k + 1) as f64 / steps as f64;
        let v = model.forward(x.clone(), &vec![flow_timestep(sigma, t_max); n])?;
        x = x + v.mul_scalar((next - sigma) as f32);
        states.push(x.clone());
    }
    Ok(states)
}

/// How straight sampled paths are: the paths' total length (each the polyline through its
/// states) over the total distance between their ends (1: every path a straight line). A ratio
/// of sums, so that the paths whose ends nearly coincide, where any detour is a large ratio,
/// weigh as little as they move. `frames` holds every state of every path, frame by frame, each
/// frame a point per path.
pub fn path_straightness(frames: &[Vec<[f32; 2]>]) -> Option<f64> {
    let (first, last) = (frames.first()?, frames.last()?);
    let dist = |a: [f32; 2], b: [f32; 2]| f64::from((b[0] - a[0]).hypot(b[1] - a[1]));
    let mut length = 0.0;
    let mut chord = 0.0;
    for i in 0..first.len().min(last.len()) {
        chord += dist(first[i], last[i]);
        length += frames
            .windows(2)
            .map(|w| dist(w[0][i], w[1][i]))
            .sum::<f64>();
    }
    (chord > 1e-9).then(|| length / chord)
}
