//! `difflab average`: a model soup, the mean of several weights files fine-tuned from one start.

use std::path::PathBuf;

use clap::Args;

use super::check_outputs;
use crate::error::{DiffError, Result};
use crate::model::unet::average_safetensors;

/// Arguments of `difflab average`.
#[derive(Debug, Args)]
pub struct AverageArgs {
    /// Two or more U-Net weights files (SafeTensors) of one shape, fine-tuned from a common
    /// start (nets trained from different random starts do not average into a working net).
    #[arg(required = true, num_args = 2..)]
    weights: Vec<PathBuf>,
    /// The averaged weights file to write.
    #[arg(short, long)]
    output: PathBuf,
}

/// The most files one average takes.
const MAX_FILES: usize = 64;

pub(super) fn average(a: AverageArgs) -> Result<()> {
    if a.weights.len() > MAX_FILES {
        return Err(DiffError::invalid(format!(
            "{} weights files given: at most {MAX_FILES} are averaged at once",
            a.weights.len()
        )));
    }
    let inputs: Vec<&std::path::Path> = a.weights.iter().map(PathBuf::as_path).collect();
    check_outputs(&[&a.output], &inputs)?;
    let mut files = Vec::with_capacity(a.weights.len());
    for p in &a.weights {
        let bytes =
            std::fs::read(p).map_err(|e| DiffError::file(p, format!("cannot read it ({e})")))?;
        files.push((bytes, p.display().to_string()));
    }
    let views: Vec<(&[u8], &str)> = files
        .iter()
        .map(|(b, n)| (b.as_slice(), n.as_str()))
        .collect();
    let bytes = average_safetensors(&views)?;
    crate::data::image_io::write_atomic(&a.output, &bytes)?;
    eprintln!(
        "wrote the mean of {} weights files to {}",
        files.len(),
        a.output.display()
    );
    Ok(())
}
