//! Which of the T training timesteps a sampler with N steps visits (diffusers'
//! `set_timesteps`, and table 2 of Lin et al. 2024, "Common diffusion noise schedules and sample
//! steps are flawed").

use serde::{Deserialize, Serialize};

use crate::error::{DiffError, Result};

/// How N inference steps are spread over T training timesteps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimestepSpacing {
    /// t_k = k·⌊T/N⌋ + offset: starts at 0, may stop short of T−1 (DDIM paper).
    Leading,
    /// t_k = round(T − k·T/N) − 1: always starts at T−1.
    Trailing,
    /// round(linspace(0, T−1, N)): both ends included.
    Linspace,
}

impl TimestepSpacing {
    /// Every spacing, in display order.
    pub const ALL: [TimestepSpacing; 3] = [
        TimestepSpacing::Leading,
        TimestepSpacing::Trailing,
        TimestepSpacing::Linspace,
    ];

    /// The CLI / file name of the spacing.
    pub fn name(self) -> &'static str {
        match self {
            TimestepSpacing::Leading => "leading",
            TimestepSpacing::Trailing => "trailing",
            TimestepSpacing::Linspace => "linspace",
        }
    }

    /// Parses a spacing name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "leading" => Ok(TimestepSpacing::Leading),
            "trailing" => Ok(TimestepSpacing::Trailing),
            "linspace" => Ok(TimestepSpacing::Linspace),
            other => Err(DiffError::invalid(format!(
                "unknown timestep spacing '{other}' (expected leading, trailing or linspace)"
            ))),
        }
    }
}

impl std::fmt::Display for TimestepSpacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The timesteps, in descending order, that N inference steps visit out of T.
///
/// `steps_offset` is added for leading spacing only, as in diffusers. Rounding is numpy's
/// (half to even).
pub fn timesteps(
    spacing: TimestepSpacing,
    num_train_timesteps: usize,
    num_inference_steps: usize,
    steps_offset: usize,
) -> Result<Vec<usize>> {
    let t_max = num_train_timesteps;
    let n = num_inference_steps;
    if n == 0 {
        return Err(DiffError::invalid(
            "the number of sampling steps must be at least 1",
        ));
    }
    if n > t_max {
        return Err(DiffError::invalid(format!(
            "{n} sampling steps is more than the T = {t_max} timesteps of the schedule"
        )));
    }
    let max_t = super::schedule::MAX_TIMESTEPS;
    if t_max > max_t {
        return Err(DiffError::invalid(format!(
            "the number of timesteps T = {t_max} is too large (at most {max_t})"
        )));
    }
    // Checked before the sums below, which it would otherwise overflow.
    if spacing == TimestepSpacing::Leading && steps_offset >= t_max {
        return Err(DiffError::invalid(format!(
            "steps_offset = {steps_offset} pushes the timesteps past T − 1 = {}",
            t_max - 1
        )));
    }
    let ts: Vec<usize> = match spacing {
        TimestepSpacing::Leading => {
            let ratio = t_max / n;
            (0..n).rev().map(|k| k * ratio + steps_offset).collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = t_max as f64 / n as f64;
            (0..n)
                .map(|k| {
                    let v = (t_max as f64 - k as f64 * ratio).round_ties_even() as i64 - 1;
                    v.max(0) as usize
                })
                .collect()
        }
        TimestepSpacing::Linspace => super::schedule::linspace(0.0, (t_max - 1) as f64, n)
            .into_iter()
            .rev()
            .map(|v| v.round_ties_even() as usize)
            .collect(),
    };
    if let Some(&first) = ts.first()
        && first >= t_max
    {
        return Err(DiffError::invalid(format!(
            "steps_offset = {steps_offset} pushes timestep {first} past T − 1 = {}",
            t_max - 1
        )));
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_lists() {
        let l = timesteps(TimestepSpacing::Leading, 1000, 10, 1).unwrap();
        assert_eq!(l, vec![901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
        let t = timesteps(TimestepSpacing::Trailing, 1000, 10, 0).unwrap();
        assert_eq!(t, vec![999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
        let s = timesteps(TimestepSpacing::Linspace, 1000, 3, 0).unwrap();
        // 499.5 rounds half to even.
        assert_eq!(s, vec![999, 500, 0]);
        assert!(timesteps(TimestepSpacing::Leading, 10, 11, 0).is_err());
        assert!(timesteps(TimestepSpacing::Leading, 10, 10, 1).is_err());
        // An offset or a T that would overflow the arithmetic is refused, not a panic.
        assert!(timesteps(TimestepSpacing::Leading, 1000, 10, usize::MAX).is_err());
        assert!(timesteps(TimestepSpacing::Trailing, usize::MAX, 3, 0).is_err());
    }
}
