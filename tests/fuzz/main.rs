//! The fuzzed loader suite: deterministic, seeded mutations of real seed files for every loader
//! a user can feed (images: PNG, JPEG, GIF; SafeTensors weights; session JSON; the app's
//! persisted state; MNIST IDX files; training checkpoints). Every case must return an error
//! value or a valid result: never panic, and never ask the allocator for more than
//! [`MAX_ALLOC`] at once.
//!
//! `DIFFLAB_FUZZ_CASES=100000 cargo test --test fuzz --release` runs longer (the default is 500
//! cases a loader). A case that ever failed is kept under `tests/fixtures/fuzz/<loader>/` and
//! replayed on every run.

// Tests and benchmarks: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use difflab::app::{Settings, save_session};
use difflab::data::image_io::decode_rgb;
use difflab::data::mnist::Mnist;
use difflab::model::UNetConfig;
use difflab::model::unet::load_safetensors;
use difflab::train::unet::{ImageSet, TrainConfig, UNetTrainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The largest single allocation a loader may make on damaged input.
const MAX_ALLOC: usize = 768 << 20;

thread_local! {
    /// The largest allocation this thread asked for since the last reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting each thread's largest request (the case that made it is then
/// reported as a failure; the request itself goes through, since refusing it would abort the
/// whole test binary).
struct Watch;

// SAFETY: forwards every request to the system allocator unchanged.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size);
        }
    });
}

#[global_allocator]
static ALLOC: Watch = Watch;

fn cases() -> usize {
    std::env::var("DIFFLAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// One mutation of `seed`, from `rng`.
fn mutate(seed: &[u8], rng: &mut ChaCha8Rng, png: bool) -> Vec<u8> {
    let mut b = seed.to_vec();
    match rng.random_range(0..6) {
        // Flip 1–8 random bytes.
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                let i = rng.random_range(0..b.len());
                b[i] ^= rng.random_range(1..=255u8);
            }
        }
        // Truncate.
        1 => b.truncate(rng.random_range(0..b.len())),
        // Duplicate a chunk in place.
        2 => {
            let start = rng.random_range(0..b.len());
            let end = (start + rng.random_range(1..=256)).min(b.len());
            let chunk = b[start..end].to_vec();
            let at = rng.random_range(0..=b.len());
            b.splice(at..at, chunk);
        }
        // Damage the header.
        3 => {
            for i in 0..b.len().min(rng.random_range(4..=64)) {
                if rng.random_bool(0.3) {
                    b[i] = rng.random();
                }
            }
        }
        // Damage a PNG chunk's data and recompute its CRC, so the damage reaches the decoder.
        4 if png => png_chunk_damage(&mut b, rng),
        // Set a 4-byte word to an extreme value (lengths, counts, sizes).
        _ => {
            if b.len() >= 4 {
                let i = rng.random_range(0..b.len() - 3);
                let v: u32 = [0, 1, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000][rng.random_range(0..5)];
                b[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
    b
}

/// Flips bytes inside one chunk's data of a PNG and rewrites that chunk's CRC.
fn png_chunk_damage(b: &mut [u8], rng: &mut ChaCha8Rng) {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 12 <= b.len() {
        let len = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        if at + 12 + len > b.len() {
            break;
        }
        chunks.push((at, len));
        at += 12 + len;
    }
    let Some(&(start, len)) = chunks.get(rng.random_range(0..chunks.len().max(1))) else {
        return;
    };
    let data = start + 8;
    for _ in 0..rng.random_range(1..=4) {
        if len > 0 {
            let i = data + rng.random_range(0..len);
            b[i] ^= rng.random_range(1..=255u8);
        } else {
            // An empty chunk (IEND): damage its length instead.
            b[start + 3] ^= 1;
        }
    }
    let crc = crc32fast::hash(&b[start + 4..data + len]);
    b[data + len..data + len + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Runs `load` on the seed, `cases()` mutations of it and the kept regression cases; fails on a
/// panic or an oversized allocation, writing the failing input under tests/fixtures/fuzz.
fn fuzz(name: &str, seed: &[u8], png: bool, load: impl Fn(&[u8]) -> bool) {
    quiet_panics();
    assert!(load(seed), "{name}: the intact seed loads");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(name);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into(),
                std::fs::read(e.path()).ok()?,
            ))
        })
        .collect();
    inputs.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(0xf022 ^ name.len() as u64);
    for k in 0..cases() {
        inputs.push((format!("case {k}"), mutate(seed, &mut rng, png)));
    }
    let mut failures = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for (what, input) in &inputs {
        let before = failures.len();
        LARGEST.with(|l| l.set(0));
        IN_CASE.with(|c| c.set(true));
        let r = catch_unwind(AssertUnwindSafe(|| load(input)));
        IN_CASE.with(|c| c.set(false));
        let largest = LARGEST.with(std::cell::Cell::get);
        match r {
            Ok(true) => ok += 1,
            Ok(false) => refused += 1,
            Err(_) => failures.push(format!("{what}: panicked")),
        }
        if largest > MAX_ALLOC {
            failures.push(format!("{what}: asked for {} MB at once", largest >> 20));
        }
        if failures.len() > before && what.starts_with("case") {
            let _ = std::fs::create_dir_all(&dir);
            let path: PathBuf = dir.join(format!("{}.bin", what.replace(' ', "-")));
            let _ = std::fs::File::create(&path).and_then(|mut f| f.write_all(input));
        }
    }
    eprintln!(
        "{name}: {} inputs, {ok} loaded, {refused} refused",
        inputs.len()
    );
    assert!(failures.is_empty(), "{name}: {failures:?}");
}

thread_local! {
    /// Whether this thread is inside a fuzz case (whose panics are counted, not printed).
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once) a panic hook that stays quiet inside fuzz cases and prints as usual
/// elsewhere, so a failing test's own message still shows.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CASE.with(std::cell::Cell::get) {
                default(info);
            }
        }));
    });
}

fn seed_image(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(24, 20, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 12) as u8, ((x + y) * 5) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode the seed");
    out.into_inner()
}

#[test]
fn images_png_jpeg_gif() {
    quiet_panics();
    for (name, format, png) in [
        ("png", image::ImageFormat::Png, true),
        ("jpeg", image::ImageFormat::Jpeg, false),
        ("gif", image::ImageFormat::Gif, false),
    ] {
        fuzz(name, &seed_image(format), png, |b| {
            decode_rgb(b, "fuzz", 256).is_ok()
        });
    }
}

/// A seed input from tests/fixtures/fuzz-seeds/, made by `make` (and written there) only when
/// the file is missing: a seed that differed between runs would make the mutations differ too.
/// Delete the file to remake it after a format change.
fn seed_file(name: &str, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz-seeds")
        .join(name);
    if let Ok(b) = std::fs::read(&path) {
        return b;
    }
    let b = make();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &b).unwrap();
    b
}

fn tiny_unet() -> UNetConfig {
    UNetConfig::new()
        .with_image_size(8)
        .with_base_channels(8)
        .with_channel_mult(vec![1, 2])
        .with_groups(4)
}

#[test]
fn safetensors_weights() {
    quiet_panics();
    let device = Device::flex();
    let c = tiny_unet();
    // burn writes the metadata map in hash order: the seed is a committed file, so every run
    // mutates the same bytes.
    let seed = seed_file("tiny.safetensors", || {
        c.init_seeded(&device, 1)
            .unwrap()
            .safetensors_bytes(&c, None)
            .unwrap()
    });
    fuzz("safetensors", &seed, false, |b| {
        load_safetensors(b, "fuzz", &device).is_ok()
    });
}

#[test]
fn session_json_and_persisted_state() {
    quiet_panics();
    let dir = std::env::temp_dir().join(format!("difflab-fuzz-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.json");
    save_session(&Settings::default(), &path).unwrap();
    let seed = std::fs::read(&path).unwrap();
    let case = dir.join("case.json");
    fuzz("session", &seed, false, |b| {
        std::fs::write(&case, b).is_ok() && difflab::app::load_session(&case).is_ok()
    });
    // The app's persisted state as eframe stores it (app.ron: a RON map of strings), read by
    // the app's own loader (a damaged file gives the defaults, a copy and a message).
    let mut map = std::collections::HashMap::new();
    map.insert(
        "app".to_string(),
        ron::to_string(&Settings::default()).unwrap(),
    );
    let ron_seed = ron::to_string(&map).unwrap().into_bytes();
    let state = dir.join("app.ron");
    fuzz("persisted-state", &ron_seed, false, |b| {
        std::fs::write(&state, b).is_ok()
            && difflab::app::restore_settings(Some(state.as_path()))
                .1
                .is_none()
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn mnist_idx_files() {
    quiet_panics();
    let n = 6u32;
    let mut images = vec![0, 0, 8, 3];
    images.extend(n.to_be_bytes());
    images.extend(28u32.to_be_bytes());
    images.extend(28u32.to_be_bytes());
    images.extend((0..n * 784).map(|i| (i % 251) as u8));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend(n.to_be_bytes());
    labels.extend(0..n as u8);
    let (images_gz, labels_gz) = (gz(&images), gz(&labels));
    // Damage the image file (compressed), the label file, and the raw IDX under the gzip.
    fuzz("idx-images", &images_gz, false, |b| {
        Mnist::parse(b, &labels_gz, "fuzz").is_ok()
    });
    fuzz("idx-labels", &labels_gz, false, |b| {
        Mnist::parse(&images_gz, b, "fuzz").is_ok()
    });
    fuzz("idx-raw", &images, false, |b| {
        Mnist::parse(&gz(b), &labels_gz, "fuzz").is_ok()
    });
}

#[test]
fn training_checkpoints() {
    quiet_panics();
    let device = Device::flex();
    let data = || ImageSet::new(&vec![vec![0.25f32; 64]; 4], [1, 8, 8]).unwrap();
    let config = TrainConfig {
        steps: 4,
        batch: 2,
        ..TrainConfig::default()
    };
    let dir = std::env::temp_dir().join(format!("difflab-fuzz-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("checkpoint.bin");
    // Parameter ids are random per process: the seed is a committed file (see `seed_file`).
    let seed = seed_file("checkpoint.bin", || {
        let mut t = UNetTrainer::new(data(), tiny_unet(), config, &device).unwrap();
        t.train_step().unwrap();
        t.save_checkpoint(&path).unwrap();
        std::fs::read(&path).unwrap()
    });
    let case = dir.join("case.bin");
    fuzz("checkpoint", &seed, false, |b| {
        std::fs::write(&case, b).is_ok()
            && UNetTrainer::resume(&case, data(), None, &device).is_ok()
    });
    let _ = std::fs::remove_dir_all(&dir);
}
