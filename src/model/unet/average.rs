//! A "model soup": the element-wise mean of several trained U-Nets of one shape (Wortsman et al.
//! 2022, "Model soups: averaging weights of multiple fine-tuned models improves accuracy without
//! increasing inference time"). It works for nets fine-tuned from one common start, which stay
//! in one basin of the loss; two nets trained from different random starts order their channels
//! differently, and their mean computes nothing useful.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use super::{TrainingRecord, UNet, UNetConfig, load_safetensors, read_training_record};
use crate::error::{DiffError, Result};

/// A module's float parameters in visiting order, flattened.
struct Flatten(Vec<Tensor<1>>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// Replaces each float parameter, in visiting order, by the next of `values` times `scale`
/// (reshaped back).
struct Replace {
    values: std::vec::IntoIter<Tensor<1>>,
    scale: f64,
    /// Parameters left without a value (a bug if ever non-zero: one config visits alike).
    missing: usize,
}

impl ModuleMapper for Replace {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(v) = self.values.next() else {
            self.missing += 1;
            return param;
        };
        let scale = self.scale;
        param.map(|t| (v * scale).reshape(t.dims()))
    }
}

/// The first field in which two configs differ, as "base_channels 16 against 32".
fn first_difference(a: &UNetConfig, b: &UNetConfig) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return "another shape".into();
    };
    a.iter().find(|(k, v)| b.get(*k) != Some(*v)).map_or_else(
        || "another shape".into(),
        |(k, v)| {
            let other = b.get(k).map_or_else(|| "none".into(), ToString::to_string);
            format!("{k} {other} against {v}")
        },
    )
}

/// The record of the mean: the first file's, its steps the most any file trained, no final
/// loss (the soup was never trained as such), and the files it averages. The files' schedules,
/// prediction types and classes must agree: otherwise their outputs do not mean the same thing.
fn soup_record(
    records: &[(Option<TrainingRecord>, &str)],
    names: Vec<String>,
) -> Result<Option<TrainingRecord>> {
    let mut known = records
        .iter()
        .filter_map(|(r, w)| r.as_ref().map(|r| (r, *w)));
    let Some((first, first_what)) = known.next() else {
        return Ok(None);
    };
    let mut record = first.clone();
    for (r, what) in known {
        let clash = if r.schedule != first.schedule {
            Some(format!(
                "was trained on the schedule {} and {first_what} on {}",
                r.schedule.describe(),
                first.schedule.describe()
            ))
        } else if r.prediction != first.prediction {
            Some(format!(
                "predicts {:?} and {first_what} {:?}",
                r.prediction, first.prediction
            ))
        } else {
            None
        };
        if let Some(c) = clash {
            return Err(DiffError::invalid(format!(
                "{what} {c}: their weights do not mean the same thing, so they cannot be averaged"
            )));
        }
        record.steps_trained = record.steps_trained.max(r.steps_trained);
    }
    record.final_loss = None;
    record.averaged_from = names;
    Ok(Some(record))
}

/// The element-wise mean of the U-Nets in `files` (their bytes, and a name for each used in
/// errors and recorded in the result's metadata), as the bytes of a new SafeTensors file. Every
/// file must hold a U-Net of the same config; there must be at least two.
pub fn average_safetensors(files: &[(&[u8], &str)]) -> Result<Vec<u8>> {
    if files.len() < 2 {
        return Err(DiffError::invalid(format!(
            "averaging needs at least two weights files ({} given)",
            files.len()
        )));
    }
    let device = Device::flex();
    let mut sums: Vec<Tensor<1>> = Vec::new();
    let mut first: Option<(UNet, UNetConfig, &str)> = None;
    let mut records = Vec::with_capacity(files.len());
    for &(bytes, what) in files {
        let (net, config) = load_safetensors(bytes, what, &device)?;
        records.push((read_training_record(bytes, what)?, what));
        let mut flat = Flatten(Vec::new());
        net.visit(&mut flat);
        match &first {
            None => {
                sums = flat.0;
                first = Some((net, config, what));
            }
            Some((_, c0, w0)) => {
                if config != *c0 {
                    return Err(DiffError::invalid(format!(
                        "{what} is a different U-Net from {w0} ({}): only nets of one config (shape and \
                         target) can be averaged",
                        first_difference(c0, &config)
                    )));
                }
                sums = sums.into_iter().zip(flat.0).map(|(s, t)| s + t).collect();
            }
        }
    }
    let Some((net, config, _)) = first else {
        return Err(DiffError::invalid("averaging: no weights files"));
    };
    let mut replace = Replace {
        values: sums.into_iter(),
        scale: 1.0 / files.len() as f64,
        missing: 0,
    };
    let soup = net.map(&mut replace);
    if replace.missing > 0 || replace.values.len() > 0 {
        return Err(DiffError::Backend(format!(
            "averaging: {} parameters left without a mean and {} means left over",
            replace.missing,
            replace.values.len()
        )));
    }
    let names = files
        .iter()
        .map(|(_, what)| {
            std::path::Path::new(what)
                .file_name()
                .map_or_else(|| (*what).to_string(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    match soup_record(&records, names)? {
        Some(r) => soup.safetensors_bytes(&config, Some(&r)),
        None => soup.safetensors_bytes(&config, None),
    }
}
