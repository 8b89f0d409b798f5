//! Non-finite guards: damaged weights are refused naming the tensor, a model that emits NaN
//! stops the sampler at that step, a diverging loss stops the trainer.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use burn::tensor::{Device, Tensor};
use difflab::diffusion::{PredictionType, sample_seeded};
use difflab::error::{DiffError, Result};
use difflab::model::Denoiser;
use difflab::model::unet::{check_finite, load_safetensors};
use difflab::tensor_util::{tensor4, to_vec};
use difflab::train::unet::{ImageSet, TrainConfig, UNetTrainer};

use crate::common::tiny_unet as tiny;

/// The weights file with one value of `tensor` replaced by `value`.
fn damaged(tensor: &str, index: usize, value: f32) -> Vec<u8> {
    let device = Device::flex();
    let c = tiny();
    let mut bytes = c
        .init_seeded(&device, 2)
        .unwrap()
        .safetensors_bytes(&c, None)
        .unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[tensor]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + n + start + 4 * index;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    bytes
}

#[test]
fn weights_with_a_nan_or_inf_are_refused_naming_the_tensor() {
    let device = Device::flex();
    for (tensor, value) in [("conv_in.bias", f32::NAN), ("time2.weight", f32::INFINITY)] {
        let bytes = damaged(tensor, 3, value);
        let err = load_safetensors(&bytes, "w.safetensors", &device).expect_err("refused");
        assert!(matches!(err, DiffError::NonFinite(_)), "{err}");
        let m = err.to_string();
        assert!(m.contains(tensor) && m.contains("index 3"), "{m}");
        assert!(!m.contains('\n'), "one line: {m}");
    }
    // An intact file passes, and the check costs one pass over the bytes.
    let good = damaged("conv_in.bias", 0, 0.25);
    assert!(check_finite(&good, "w").is_ok());
    assert!(load_safetensors(&good, "w", &device).is_ok());
}

#[test]
fn the_cli_refuses_nan_weights_and_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("difflab-nanw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("nan.safetensors");
    std::fs::write(&weights, damaged("conv_in.bias", 1, f32::NAN)).unwrap();
    let out = dir.join("out.png");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args(["sample", "--model", "unet", "--steps", "3", "--weights"])
        .arg(&weights)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("conv_in.bias") && !err.contains("panicked"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Predicts zeros, then NaN from its third call on.
struct Breaks(AtomicUsize);

impl Denoiser for Breaks {
    fn prediction_type(&self) -> PredictionType {
        PredictionType::Epsilon
    }
    fn sample_shape(&self) -> [usize; 3] {
        [1, 4, 4]
    }
    fn forward(&self, x_t: Tensor<4>, _t: &[usize]) -> Result<Tensor<4>> {
        let call = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let dims = x_t.dims();
        let mut v = vec![0.0f32; dims.iter().product()];
        if call >= 3 {
            v[5] = f32::NAN;
        }
        Ok(tensor4(v, dims, &x_t.device()))
    }
    fn name(&self) -> String {
        "breaks".into()
    }
}

#[test]
fn a_model_that_emits_nan_at_step_3_stops_the_sampler_there() {
    let device = Device::flex();
    let scheduler = crate::common::ddim10(PredictionType::Epsilon);
    let mut seen = 0;
    let r = sample_seeded(
        &Breaks(AtomicUsize::new(0)),
        &scheduler,
        0,
        2,
        &AtomicBool::new(false),
        &device,
        |_| seen += 1,
    );
    let err = r.expect_err("stopped");
    assert!(matches!(err, DiffError::NonFinite(_)));
    let m = err.to_string();
    assert!(
        m.contains("non-finite values at step 3 of 10 (t = 799)"),
        "{m}"
    );
    assert_eq!(seen, 2, "the two good steps were reported");
}

#[test]
fn a_diverging_loss_stops_the_trainer_with_the_step() {
    let mut images = vec![vec![0.5f32; 64]; 4];
    images[2][10] = f32::NAN;
    let data = ImageSet::new(&images, [1, 8, 8]).unwrap();
    let config = TrainConfig {
        batch: 4,
        ..TrainConfig::default()
    };
    let mut t = UNetTrainer::new(data, tiny(), config, &Device::flex()).unwrap();
    let err = t.train_step().expect_err("a NaN loss");
    assert!(matches!(err, DiffError::NonFinite(_)), "{err}");
    assert!(err.to_string().contains("at step 0"), "{err}");
    // The model is kept (not consumed by the failed step).
    let x = tensor4(vec![0.1; 64], [1, 1, 8, 8], &Device::flex());
    assert!(
        to_vec(t.raw().unwrap().forward(x, &[5]))
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
}

/// The files in `dir` (names).
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn failed_writes_keep_the_previous_file_and_leave_no_temporary() {
    use difflab::data::image_io::{write_atomic, write_atomic_with};
    let dir = std::env::temp_dir().join(format!("difflab-writes-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a-folder")).unwrap();
    let file = dir.join("grid.png");
    std::fs::write(&file, b"the previous file").unwrap();
    // A full disk, half-way through the write (the same error /dev/full gives).
    let err = write_atomic_with(&file, |f| {
        f.write_all(b"half of the new")?;
        Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
    })
    .expect_err("a full disk");
    let m = err.to_string();
    assert!(m.contains("grid.png") && !m.contains('\n'), "{m}");
    assert_eq!(std::fs::read(&file).unwrap(), b"the previous file");
    assert_eq!(
        listing(&dir),
        ["a-folder", "grid.png"],
        "no temporary file left"
    );
    // A path that is a folder, and a folder that does not exist.
    let m = write_atomic(&dir.join("a-folder"), b"x")
        .expect_err("a folder")
        .to_string();
    assert!(m.contains("is a folder"), "{m}");
    assert!(write_atomic(&dir.join("missing/x.png"), b"x").is_err());
    assert_eq!(listing(&dir), ["a-folder", "grid.png"]);
    // The CLI: a read-only folder gives one line and exit 2 (Unix: skipped as root, who may
    // write anywhere; Windows has no read-only folders, its counterpart is a locked file).
    #[cfg(unix)]
    read_only_folder_gives_one_line(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
fn read_only_folder_gives_one_line(dir: &std::path::Path) {
    let ro = dir.join("read-only");
    std::fs::create_dir_all(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"x").is_err() {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_difflab"))
            .args(["schedule", "--format", "csv", "-o"])
            .arg(ro.join("s.csv"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `difflab args` and returns its peak resident memory in bytes (VmHWM, polled from /proc
/// while it runs; Linux only) with its exit status.
#[cfg(target_os = "linux")]
fn peak_rss(args: &[&str]) -> (f64, std::process::ExitStatus) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0.0f64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (peak_kb * 1024.0, status);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The memory estimate against the measured peak of real runs (batches the constants were not
/// fitted on), within ±30 %.
#[cfg(target_os = "linux")]
#[test]
fn the_memory_estimate_is_within_30_percent_of_measured_peaks() {
    use burn::module::Module;
    use difflab::model::memory::{MemoryEstimate, Workload};
    let device = Device::flex();
    let (shipped, config) = difflab::model::unet::shipped(&device).unwrap();
    let out = std::env::temp_dir().join(format!("difflab-mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let grid = out.join("grid.png");
    // Sampling the shipped U-Net, 128 images in one batch (DDIM, 3 steps).
    let (measured, status) = peak_rss(&[
        "--device",
        "cpu",
        "sample",
        "--model",
        "unet",
        "--steps",
        "3",
        "--count",
        "128",
        "--batch",
        "128",
        "-o",
        grid.to_str().unwrap(),
    ]);
    assert!(status.success());
    let estimate = MemoryEstimate::new(
        &config,
        shipped.num_params(),
        Workload::Sample {
            guided: false,
            kept_images: 128,
        },
    )
    .bytes(128);
    let ratio = estimate / measured;
    assert!(
        (0.7..=1.3).contains(&ratio),
        "sampling: estimate {estimate:.0} B, measured {measured:.0} B (×{ratio:.2})"
    );
    // Training the same shape for 2 steps at batch 24 on 512 digits.
    let run = out.join("run");
    let (measured, status) = peak_rss(&[
        "--device",
        "cpu",
        "train",
        "--data",
        "mnist",
        "--data-count",
        "512",
        "--base-channels",
        "16",
        "--steps",
        "2",
        "--batch",
        "24",
        "--sample-every",
        "0",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(status.success());
    let estimate = MemoryEstimate::new(
        &config,
        shipped.num_params(),
        Workload::Train { data_images: 512 },
    )
    .bytes(24);
    let ratio = estimate / measured;
    assert!(
        (0.7..=1.3).contains(&ratio),
        "training: estimate {estimate:.0} B, measured {measured:.0} B (×{ratio:.2})"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Over the available memory, the CLI refuses with one line: the estimate and the largest batch
/// that fits; exit 2, nothing written.
#[test]
fn a_batch_over_the_available_memory_is_refused_with_the_largest_that_fits() {
    let out = std::env::temp_dir().join(format!("difflab-mem-refuse-{}.png", std::process::id()));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args([
            "--device",
            "cpu",
            "sample",
            "--model",
            "unet",
            "--count",
            "5000",
            "--batch",
            "5000",
            "-o",
            out.to_str().unwrap(),
        ])
        .env("DIFFLAB_MEMORY_LIMIT_MB", "500")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        line.contains("sampling at batch 5000 needs about")
            && line.contains("more than the 500 MB available")
            && line.contains("the largest batch that fits is"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !out.exists());
    // The batch it names fits: the estimate for it is within the limit, one more is not.
    let fits: usize = line
        .rsplit("--batch ")
        .next()
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .unwrap();
    let device = Device::flex();
    let (shipped, config) = difflab::model::unet::shipped(&device).unwrap();
    let e = difflab::model::memory::MemoryEstimate::new(
        &config,
        burn::module::Module::num_params(&shipped),
        difflab::model::memory::Workload::Sample {
            guided: false,
            kept_images: 5000,
        },
    );
    assert!(
        e.bytes(fits) <= 500e6 && e.bytes(fits + 1) > 500e6,
        "{fits}"
    );
}

/// When an allocation fails anyway (here under `ulimit -v`, with the estimate's check lifted),
/// the binary ends with one line and exit code 2: no abort, no backtrace.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_allocation_ends_in_one_line_and_exit_2() {
    let out = std::env::temp_dir().join(format!("difflab-oom-{}.png", std::process::id()));
    let script = format!(
        "ulimit -v 600000; exec '{}' --device cpu sample --model unet --count 8000 --batch 8000 --steps 2 -o '{}'",
        env!("CARGO_BIN_EXE_difflab"),
        out.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("DIFFLAB_MEMORY_LIMIT_MB", "1000000")
        .env("RAYON_NUM_THREADS", "2")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: out of memory (a request for ")
            && last.ends_with("ask for less (a smaller --batch, --count, --size or image)"),
        "{err}"
    );
    assert!(
        !err.contains("backtrace") && !err.contains("panicked"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A write keeps what its path is: a symbolic link is written through (the link stays), a
/// replaced file keeps its permissions, and a named pipe is written into, not replaced by a
/// plain file (as `-o /dev/null` once was). Unix: links, modes and pipes as Unix has them.
#[cfg(unix)]
#[test]
fn a_write_keeps_links_modes_and_pipes_as_they_are() {
    use difflab::data::image_io::write_atomic;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
    let dir = std::env::temp_dir().join(format!("difflab-write-kinds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let is_link = |p: &std::path::Path| {
        std::fs::symlink_metadata(p)
            .unwrap()
            .file_type()
            .is_symlink()
    };

    std::fs::write(dir.join("target.json"), b"old").unwrap();
    symlink("target.json", dir.join("link.json")).unwrap();
    write_atomic(&dir.join("link.json"), b"new").unwrap();
    assert!(is_link(&dir.join("link.json")));
    assert_eq!(std::fs::read(dir.join("target.json")).unwrap(), b"new");
    symlink("made.json", dir.join("dangling.json")).unwrap();
    write_atomic(&dir.join("dangling.json"), b"made").unwrap();
    assert!(is_link(&dir.join("dangling.json")));
    assert_eq!(std::fs::read(dir.join("made.json")).unwrap(), b"made");

    let private = dir.join("private.csv");
    std::fs::write(&private, b"old").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_atomic(&private, b"new").unwrap();
    let meta = std::fs::metadata(&private).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&private).unwrap(), b"new");

    let pipe = dir.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&pipe).status();
    if made.is_ok_and(|s| s.success()) {
        let reader = {
            let pipe = pipe.clone();
            std::thread::spawn(move || std::fs::read(pipe).unwrap())
        };
        write_atomic(&pipe, b"through the pipe").unwrap();
        let kind = std::fs::symlink_metadata(&pipe).unwrap().file_type();
        assert!(kind.is_fifo(), "the pipe was replaced by {kind:?}");
        assert_eq!(reader.join().unwrap(), b"through the pipe");
    }
    let names = listing(&dir);
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Windows' counterpart of the read-only folder: an output file another program holds open
/// without sharing (as an image viewer or Excel does) gives one line and exit 2, and the file
/// is left as it was.
#[cfg(windows)]
#[test]
fn a_locked_output_gives_one_line_and_is_kept() {
    use std::os::windows::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(format!("difflab-locked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("s.csv");
    std::fs::write(&out, b"mine").unwrap();
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .share_mode(0)
        .open(&out)
        .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args(["schedule", "--format", "csv", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    drop(lock);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
