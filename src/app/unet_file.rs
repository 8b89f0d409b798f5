//! The U-Net weights the sampling panels use: the shipped file, or one the student opened (a
//! net trained or averaged with `difflab train` / `difflab average`). An opened file is kept by
//! a hash of its bytes ([`WeightsId`]), so a run's settings name exactly the weights it sampled
//! with, and a file changed on disk is a different model.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::diffusion::ScheduleConfig;
use crate::error::{DiffError, Result};
use crate::model::unet::{
    SHIPPED_FLOW_WEIGHTS, SHIPPED_WEIGHTS, TrainingRecord, UNet, UNetConfig, load_safetensors,
    read_config, read_training_record,
};

/// Which U-Net weights: [`SHIPPED`], or the FNV-1a hash of an opened file's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WeightsId(pub u64);

/// The weights bundled with difflab.
pub const SHIPPED: WeightsId = WeightsId(0);
/// The shipped flow-matching U-Net (an opened file's hash is never 1 in practice).
pub const SHIPPED_FLOW: WeightsId = WeightsId(1);

/// The largest weights file the app opens (the shipped one is 0.7 MB; a net this large would
/// take minutes per run on a laptop's CPU).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Classes the digit picker knows (0 to 9).
pub const DIGIT_CLASSES: usize = 10;

/// A U-Net weights file, checked and ready to build on any device.
pub struct UNetFile {
    /// Its id.
    pub id: WeightsId,
    /// Where it was read from (`None`: the shipped weights).
    pub path: Option<PathBuf>,
    /// Its file name, as the panels show it.
    pub name: String,
    bytes: Cow<'static, [u8]>,
    /// Its shape.
    pub config: UNetConfig,
    /// How it was trained, when the file says.
    pub record: Option<TrainingRecord>,
}

impl UNetFile {
    /// Whether the digit picker applies: a net conditioned on the ten MNIST digits.
    pub fn takes_digits(&self) -> bool {
        self.config.num_classes == Some(DIGIT_CLASSES)
    }

    /// Why the digit picker is off for this file (`None` when it applies).
    pub fn no_digits_reason(&self) -> Option<String> {
        match self.config.num_classes {
            Some(DIGIT_CLASSES) => None,
            None => Some(format!(
                "{} is unconditional (trained without --classes): it takes no digit.",
                self.name
            )),
            Some(n) => Some(format!(
                "{} has {n} classes; the digit picker asks for one of 10.",
                self.name
            )),
        }
    }

    /// A note when `schedule` is not the one this net was trained on.
    pub fn schedule_note(&self, schedule: &ScheduleConfig) -> Option<String> {
        self.record.as_ref()?.schedule_mismatch(schedule)
    }

    /// Builds the net on `device`.
    pub fn build(&self, device: &burn::tensor::Device) -> Result<(UNet, UNetConfig)> {
        load_safetensors(&self.bytes, &self.name, device)
    }

    /// One line on what it is: "28×28 grey, 10 classes, base 16 channels, predicts v, trained
    /// 30,000 steps".
    pub fn summary(&self) -> String {
        let kind = match self.config.num_classes {
            Some(n) => format!("{n} classes"),
            None => "unconditional".into(),
        };
        let predicts = match self.config.prediction {
            crate::diffusion::PredictionType::Epsilon => "ε",
            crate::diffusion::PredictionType::Sample => "x0",
            crate::diffusion::PredictionType::VPrediction => "v",
            crate::diffusion::PredictionType::Flow => "flow velocity ε − x0",
        };
        let side = self.config.image_size;
        let colour = if self.config.in_channels == 1 {
            "grey"
        } else {
            "colour"
        };
        let mut s = format!(
            "{side}×{side} {colour}, {kind}, base {} channels, predicts {predicts}",
            self.config.base_channels
        );
        if let Some(r) = &self.record {
            s.push_str(&format!(
                ", trained {} steps",
                group_thousands(r.steps_trained)
            ));
        }
        s
    }
}

/// 30000 → "30,000".
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// FNV-1a over the bytes (stable across builds, so session files can keep it); never
/// [`SHIPPED`]'s 0.
fn hash(bytes: &[u8]) -> WeightsId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    WeightsId(h.max(1))
}

/// The most bytes of opened files kept at once (the oldest go first; the newest always stays).
pub const MAX_KEPT_BYTES: usize = 256 << 20;

/// The files opened in this process, oldest first.
fn registry() -> &'static Mutex<Vec<Arc<UNetFile>>> {
    static FILES: OnceLock<Mutex<Vec<Arc<UNetFile>>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Keeps `file` as the newest, letting the oldest go past [`MAX_KEPT_BYTES`] (a student who
/// retrains and reopens all afternoon does not pile up every version).
fn keep(files: &mut Vec<Arc<UNetFile>>, file: Arc<UNetFile>) {
    files.retain(|f| f.id != file.id);
    files.push(file);
    while files.len() > 1 && files.iter().map(|f| f.bytes.len()).sum::<usize>() > MAX_KEPT_BYTES {
        files.remove(0);
    }
}

/// The largest images the panels show (a net trained on a folder makes 32×32 colour images
/// unless told otherwise; MNIST's are 28×28 grey).
pub const MAX_SIDE: usize = 128;

/// Checks what the panels can show: grey or colour images up to [`MAX_SIDE`] a side.
fn check_shape(config: &UNetConfig, name: &str) -> Result<()> {
    if !matches!(config.in_channels, 1 | 3) || config.image_size > MAX_SIDE {
        return Err(DiffError::invalid(format!(
            "{name}: the app shows grey or colour images up to {MAX_SIDE}×{MAX_SIDE}, and this \
             U-Net makes {s}×{s} images with {c} channel{plural} (sample it with `difflab \
             sample --weights`)",
            s = config.image_size,
            c = config.in_channels,
            plural = if config.in_channels == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// The file and its folder, "picrun/model.safetensors": every run of `difflab train` writes a
/// model.safetensors, so the folder is what tells them apart.
fn short_name(path: &Path) -> String {
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    match path.parent().and_then(Path::file_name) {
        Some(dir) => format!("{}/{file}", dir.to_string_lossy()),
        None => file,
    }
}

/// Reads, checks (framing, shape, every tensor present and finite) and keeps a weights file.
/// A bad file is one line saying why.
pub fn open(path: &Path) -> Result<Arc<UNetFile>> {
    let name = short_name(path);
    // The page has no disk: a dropped file's bytes (src/app/files.rs).
    #[cfg(target_arch = "wasm32")]
    let meta = super::files::web_metadata(path).map_err(|e| DiffError::file(path, e))?;
    #[cfg(not(target_arch = "wasm32"))]
    let meta = std::fs::metadata(path).map_err(|e| DiffError::file(path, e))?;
    if !meta.is_file() {
        return Err(DiffError::file(path, "not a file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(DiffError::file(
            path,
            format!(
                "{} MB is more than the {} MB a U-Net weights file may have here",
                meta.len() >> 20,
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    let bytes = super::files::read(path).map_err(|e| DiffError::file(path, e))?;
    // Refusals name the whole path; the panels show the short name.
    let what = path.display().to_string();
    let config = read_config(&bytes, &what)?;
    check_shape(&config, &what)?;
    let record = read_training_record(&bytes, &what)?;
    // Every tensor, its shape and its values, checked now rather than at the first run.
    load_safetensors(&bytes, &what, &burn::tensor::Device::flex())?;
    let file = Arc::new(UNetFile {
        id: hash(&bytes),
        path: Some(path.to_path_buf()),
        name,
        bytes: Cow::Owned(bytes),
        config,
        record,
    });
    let mut files = registry()
        .lock()
        .map_err(|_| DiffError::invalid("the weights registry is poisoned"))?;
    keep(&mut files, file.clone());
    Ok(file)
}

/// The shipped weights.
pub fn shipped() -> Result<Arc<UNetFile>> {
    static FILE: OnceLock<std::result::Result<Arc<UNetFile>, String>> = OnceLock::new();
    FILE.get_or_init(|| {
        let name = "the shipped U-Net";
        let config = read_config(SHIPPED_WEIGHTS, name).map_err(|e| e.to_string())?;
        let record = read_training_record(SHIPPED_WEIGHTS, name).map_err(|e| e.to_string())?;
        Ok(Arc::new(UNetFile {
            id: SHIPPED,
            path: None,
            name: name.into(),
            bytes: Cow::Borrowed(SHIPPED_WEIGHTS),
            config,
            record,
        }))
    })
    .clone()
    .map_err(DiffError::invalid)
}

/// The shipped flow-matching weights.
pub fn shipped_flow() -> Result<Arc<UNetFile>> {
    static FILE: OnceLock<std::result::Result<Arc<UNetFile>, String>> = OnceLock::new();
    FILE.get_or_init(|| {
        let name = "the shipped flow-matching U-Net";
        let config = read_config(SHIPPED_FLOW_WEIGHTS, name).map_err(|e| e.to_string())?;
        let record = read_training_record(SHIPPED_FLOW_WEIGHTS, name).map_err(|e| e.to_string())?;
        Ok(Arc::new(UNetFile {
            id: SHIPPED_FLOW,
            path: None,
            name: name.into(),
            bytes: Cow::Borrowed(SHIPPED_FLOW_WEIGHTS),
            config,
            record,
        }))
    })
    .clone()
    .map_err(DiffError::invalid)
}

/// The weights `id` names: the shipped ones or a file opened in this process.
pub fn get(id: WeightsId) -> Result<Arc<UNetFile>> {
    if id == SHIPPED {
        return shipped();
    }
    if id == SHIPPED_FLOW {
        return shipped_flow();
    }
    registry()
        .lock()
        .map_err(|_| DiffError::invalid("the weights registry is poisoned"))?
        .iter()
        .find(|f| f.id == id)
        .cloned()
        .ok_or_else(|| {
            DiffError::invalid("those U-Net weights are no longer open; open the file again")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_reference_vectors() {
        // The FNV-1a 64 test vectors (draft-eastlake-fnv): "" and "a".
        assert_eq!(hash(b""), WeightsId(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"a"), WeightsId(0xaf63_dc4c_8601_ec8c));
        assert_eq!(hash(b"foobar"), WeightsId(0x8594_4171_f739_67e8));
    }

    #[test]
    fn a_file_is_named_with_its_folder() {
        assert_eq!(
            short_name(Path::new("/home/ann/runs/cats/model.safetensors")),
            "cats/model.safetensors"
        );
        assert_eq!(
            short_name(Path::new("soup.safetensors")),
            "soup.safetensors"
        );
    }

    /// A file of `n` bytes (not a real net: only its size matters to `keep`).
    fn file_of(id: u64, n: usize) -> Arc<UNetFile> {
        let shipped = shipped().expect("shipped");
        Arc::new(UNetFile {
            id: WeightsId(id),
            path: None,
            name: format!("f{id}"),
            bytes: Cow::Owned(vec![0; n]),
            config: shipped.config.clone(),
            record: None,
        })
    }

    #[test]
    fn the_oldest_files_go_past_the_byte_cap_and_the_newest_stays() {
        let mut files = Vec::new();
        let third = MAX_KEPT_BYTES / 3;
        for id in 1..=3 {
            keep(&mut files, file_of(id, third));
        }
        let ids = |files: &Vec<Arc<UNetFile>>| files.iter().map(|f| f.id.0).collect::<Vec<_>>();
        assert_eq!(ids(&files), [1, 2, 3]);
        // Reopened: newest again, not twice.
        keep(&mut files, file_of(1, third));
        assert_eq!(ids(&files), [2, 3, 1]);
        // A fourth third goes over the cap: the oldest goes.
        keep(&mut files, file_of(4, third));
        assert_eq!(ids(&files), [3, 1, 4]);
        // One file over the cap alone stays (it is the one in use).
        keep(&mut files, file_of(5, MAX_KEPT_BYTES + 1));
        assert_eq!(ids(&files), [5]);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(30_000), "30,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_shipped_file_takes_digits_and_knows_its_schedule() {
        let f = shipped().expect("shipped");
        assert!(f.takes_digits());
        assert_eq!(f.no_digits_reason(), None);
        assert_eq!(f.schedule_note(&ScheduleConfig::default()), None);
        let cosine = ScheduleConfig::new(crate::diffusion::BetaSchedule::Cosine, 1000);
        assert!(f.schedule_note(&cosine).is_some());
        assert!(get(SHIPPED).is_ok());
        assert!(get(WeightsId(12345)).is_err());
    }
}
