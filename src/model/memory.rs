//! How much memory a U-Net run needs, estimated before it starts, so a batch that cannot fit is
//! refused with the largest one that does, instead of ending in the allocator (or the kernel's
//! OOM killer).
//!
//! The estimate is the peak resident memory of the `difflab` process on flex:
//!
//! ```text
//! peak ≈ base + 4 bytes · (copies · P + B' · per_image)
//! per_image = a · M + b · A (+ 2 · C · S² for x_t and the noise when sampling)
//! M = Σ_levels c_i · S_i²          (one feature map per resolution level, per image)
//! A = (S_last²)²                    (the attention scores at the lowest resolution, if any)
//! ```
//!
//! P is the parameter count, B' the images per model pass (2B for a guided run, which runs the
//! conditional and the unconditional halves together), C and S the image's channels and side.
//! Sampling keeps P twice (weights and the loaded record), a = 4.4, b = 0.55 and base = 32 MB;
//! training keeps six copies of P (weights, gradients, AdamW's two moments, the EMA, the
//! record), everything the backward pass needs (a = 15.5, b = 3.5), the data set as f32 (1.5
//! copies), and base = 48 MB. Sampling also keeps every finished sample (4·C·S² + 3·S² bytes
//! each, as f32 and as pixels) until it writes them. The constants were fitted on this machine's measured peaks (the
//! shipped net and the reference net, batches 1 to 1024; `/usr/bin/time -f %M`), and
//! tests/core/hardening.rs checks the estimate against fresh measurements within ±30 %.

use crate::error::{DiffError, Result};
use crate::model::UNetConfig;

/// What a run does with the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Sampling (DDPM or DDIM): forward passes only. `guided` runs a batch of 2B per pass.
    Sample {
        /// Classifier-free guidance with w ∉ {0, 1}.
        guided: bool,
        /// Finished samples kept until the end (as f32 and as RGB pixels for the output).
        kept_images: usize,
    },
    /// Training on `data_images` images (forward, backward, AdamW, EMA).
    Train {
        /// How many images the data set holds in memory.
        data_images: usize,
    },
}

/// Bytes in a megabyte (10⁶, as the messages print MB and GB).
const MB: f64 = 1e6;

/// The fixed part and the part per image of a run's peak memory, in bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryEstimate {
    /// Independent of the batch: the process, the weights (and optimiser), the data.
    pub fixed_bytes: f64,
    /// Added by each image of the batch.
    pub per_image_bytes: f64,
}

impl MemoryEstimate {
    /// The model's estimate for `workload` ([module docs](self) give the formula).
    pub fn new(config: &UNetConfig, params: usize, workload: Workload) -> Self {
        let s = config.image_size as f64;
        let pixels = config.in_channels as f64 * s * s;
        let levels = config.channel_mult.len().max(1);
        let m: f64 = config
            .channel_mult
            .iter()
            .enumerate()
            .map(|(i, mult)| {
                let side = (config.image_size >> i).max(1) as f64;
                (config.base_channels * mult) as f64 * side * side
            })
            .sum();
        let last = (config.image_size >> (levels - 1)).max(1) as f64;
        let att = if config.attention {
            (last * last).powi(2)
        } else {
            0.0
        };
        let p = params as f64;
        match workload {
            Workload::Sample {
                guided,
                kept_images,
            } => {
                let passes = if guided { 2.0 } else { 1.0 };
                Self {
                    fixed_bytes: 32.0 * MB
                        + 4.0 * 2.0 * p
                        + kept_images as f64 * (4.0 * pixels + 3.0 * s * s),
                    per_image_bytes: 4.0 * (2.0 * pixels + passes * (4.4 * m + 0.55 * att)),
                }
            }
            Workload::Train { data_images } => Self {
                fixed_bytes: 48.0 * MB + 4.0 * 6.0 * p + 4.0 * 1.5 * pixels * data_images as f64,
                per_image_bytes: 4.0 * (15.5 * m + 3.5 * att),
            },
        }
    }

    /// The estimated peak for a batch of `batch`, in bytes.
    pub fn bytes(&self, batch: usize) -> f64 {
        self.fixed_bytes + self.per_image_bytes * batch as f64
    }

    /// The largest batch whose estimate fits in `available` bytes (0 if none does).
    pub fn largest_batch(&self, available: f64) -> usize {
        if available <= self.fixed_bytes {
            return 0;
        }
        ((available - self.fixed_bytes) / self.per_image_bytes).floor() as usize
    }

    /// Refuses a batch whose estimate exceeds `available` bytes, with one line giving the
    /// estimate and the largest batch that fits. `what` names the run ("sampling", "training").
    pub fn check(&self, what: &str, batch: usize, available: f64) -> Result<()> {
        let need = self.bytes(batch);
        if need <= available {
            return Ok(());
        }
        let fits = self.largest_batch(available);
        let advice = if fits == 0 {
            "even a batch of 1 does not fit: close other programs or use a smaller model".into()
        } else {
            format!("the largest batch that fits is {fits} (--batch {fits})")
        };
        Err(DiffError::invalid(format!(
            "{what} at batch {batch} needs about {} of memory, more than the {} available; {advice}",
            human_bytes(need),
            human_bytes(available)
        )))
    }
}

/// "1.2 GB", "850 MB".
pub fn human_bytes(bytes: f64) -> String {
    if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else {
        format!("{:.0} MB", bytes / MB)
    }
}

/// The memory this process could still use, in bytes: `DIFFLAB_MEMORY_LIMIT_MB` when set (tests,
/// or a user who wants to leave room for other programs), else what the system says is
/// available: Linux's MemAvailable capped by a cgroup (v2) limit when one is set, Windows'
/// available physical memory (`GlobalMemoryStatusEx`), macOS's free, inactive, purgeable and
/// speculative pages (`host_statistics64`, what Activity Monitor counts as reclaimable).
/// `None` where it cannot be known (the browser, other systems): then no run is refused in
/// advance and the system's own limits apply.
pub fn available_memory_bytes() -> Option<f64> {
    if let Some(mb) = std::env::var("DIFFLAB_MEMORY_LIMIT_MB")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(mb * MB);
    }
    system_available_bytes()
}

#[cfg(target_os = "linux")]
fn system_available_bytes() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut available = parse_meminfo_available(&meminfo)?;
    let read = |p: &str| -> Option<f64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    if let (Some(max), Some(current)) = (
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    ) {
        available = available.min((max - current).max(0.0));
    }
    Some(available)
}

/// MemAvailable of a `/proc/meminfo` text, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_meminfo_available(meminfo: &str) -> Option<f64> {
    let available_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(available_kb * 1024.0)
}

#[cfg(windows)]
fn system_available_bytes() -> Option<f64> {
    use windows_sys::Win32::System::SystemInformation::{GlobalMemoryStatusEx, MEMORYSTATUSEX};
    // SAFETY: MEMORYSTATUSEX is plain data; dwLength is set as the call requires.
    unsafe {
        let mut status: MEMORYSTATUSEX = std::mem::zeroed();
        status.dwLength = std::mem::size_of::<MEMORYSTATUSEX>() as u32;
        (GlobalMemoryStatusEx(&raw mut status) != 0).then_some(status.ullAvailPhys as f64)
    }
}

#[cfg(target_os = "macos")]
#[allow(deprecated)] // libc's mach functions point to the mach2 crate; these calls are stable
fn system_available_bytes() -> Option<f64> {
    // SAFETY: host_statistics64 fills at most `count` integers of `stats` and says how many.
    unsafe {
        let mut stats: libc::vm_statistics64 = std::mem::zeroed();
        let mut count = libc::HOST_VM_INFO64_COUNT;
        let rc = libc::host_statistics64(
            libc::mach_host_self(),
            libc::HOST_VM_INFO64,
            (&raw mut stats).cast(),
            &raw mut count,
        );
        if rc != libc::KERN_SUCCESS {
            return None;
        }
        let page = libc::sysconf(libc::_SC_PAGESIZE);
        if page <= 0 {
            return None;
        }
        let pages = u64::from(stats.free_count)
            + u64::from(stats.inactive_count)
            + u64::from(stats.purgeable_count)
            + u64::from(stats.speculative_count);
        Some(pages as f64 * page as f64)
    }
}

#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
fn system_available_bytes() -> Option<f64> {
    None
}

/// Checks a run against this machine's available memory (a no-op where that is unknown).
pub fn check_fits(estimate: &MemoryEstimate, what: &str, batch: usize) -> Result<()> {
    match available_memory_bytes() {
        Some(available) => estimate.check(what, batch, available),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_available_is_read_in_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo_available(text), Some(2048.0 * 1024.0));
        assert_eq!(parse_meminfo_available("MemTotal: 5 kB\n"), None);
    }

    /// On the systems difflab knows, the figure is a real one: more than 1 MB, less than an
    /// exabyte (a wrong unit or an unread field shows as 0 or as nonsense).
    #[cfg(any(target_os = "linux", windows, target_os = "macos"))]
    #[test]
    fn this_machine_reports_its_available_memory() {
        let bytes = system_available_bytes().expect("the system's available memory");
        assert!((1e6..1e18).contains(&bytes), "{bytes}");
    }
}
