//! The `difflab` binary end to end: outputs and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn difflab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args(args)
        .output()
        .expect("run difflab")
}

/// `difflab interpolate` between seeds 1 and 2, with `rest`.
fn interpolate_args(rest: &[&str]) -> Vec<String> {
    ["interpolate", "--seed-a", "1", "--seed-b", "2"]
        .iter()
        .chain(rest)
        .map(ToString::to_string)
        .collect()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("difflab-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Marks a file read-only or writable again (Unix: no write bits; Windows: the read-only
/// attribute).
fn set_read_only(path: &std::path::Path, read_only: bool) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)] // undoing our own set_readonly(true)
    perms.set_readonly(read_only);
    std::fs::set_permissions(path, perms).unwrap();
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Exit code 2, one line starting "error:", and no panic text.
pub(crate) fn assert_bad_input(args: &[&str], needle: &str) {
    let o = difflab(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}: exit {:?}, stderr {err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    // The error is one line, the last: notices ("difflab: computing on …") and warnings may
    // come before it, nothing after it (clap's usage and tips were three more lines).
    let lines: Vec<&str> = err.trim_end().lines().collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("error: "),
        "{args:?}: the last line is not the error: {err}"
    );
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.starts_with("difflab: ") || l.starts_with("warning: ")),
        "{args:?}: not one line: {err}"
    );
    assert!(
        err.to_lowercase().contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
}

fn write_png(path: &Path, w: u32, h: u32) {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 128]));
    img.save(path).unwrap();
}

#[test]
fn schedule_json_has_every_curve() {
    let o = difflab(&["schedule", "--schedule", "cosine", "--timesteps", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "betas",
        "alphas_cumprod",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "posterior_variance",
        "log_snr",
    ] {
        assert_eq!(
            v[key].as_array().map(std::vec::Vec::len),
            Some(100),
            "{key}"
        );
    }
    let ab = v["alphas_cumprod"][50].as_f64().unwrap();
    let s = v["sqrt_alphas_cumprod"][50].as_f64().unwrap();
    assert!((s * s - ab).abs() < 1e-12);
}

#[test]
fn schedule_csv_has_a_row_per_timestep() {
    let o = difflab(&["schedule", "--format", "csv", "--timesteps", "10"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11);
    assert!(lines[0].starts_with("t,beta,alpha_cumprod"));
    assert!(lines[1].starts_with("0,0.0001"));
}

#[test]
fn timesteps_prints_a_json_array() {
    let o = difflab(&[
        "timesteps",
        "--spacing",
        "trailing",
        "--timesteps",
        "1000",
        "--steps",
        "5",
    ]);
    assert!(o.status.success());
    let v: Vec<usize> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, vec![999, 799, 599, 399, 199]);
}

#[test]
fn noise_writes_a_colour_filmstrip() {
    let d = tmp("noise");
    let input = d.join("in.png");
    write_png(&input, 40, 30);
    let out = d.join("strip.png");
    let o = difflab(&[
        "--device",
        "cpu",
        "noise",
        input.to_str().unwrap(),
        "--t",
        "0,500,999",
        "--seed",
        "7",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("computing on flex"));
    let img = image::open(&out).unwrap().to_rgb8();
    // Three 40×30 frames with 4-pixel gaps.
    assert_eq!((img.width(), img.height()), (3 * 40 + 4 * 4, 30 + 2 * 4));
    // Frame 0 is the image itself (t = 0 keeps almost all signal).
    let p = img.get_pixel(4 + 20, 4 + 10);
    assert!(
        (i32::from(p.0[0]) - 80).abs() <= 4 && (i32::from(p.0[2]) - 128).abs() <= 4,
        "{p:?}"
    );
}

#[test]
fn sample_writes_grid_out_dir_and_trajectory() {
    let d = tmp("sample");
    let grid = d.join("grid.png");
    let traj = d.join("traj.png");
    let dir = d.join("samples");
    let o = difflab(&[
        "--device",
        "cpu",
        "sample",
        "--model",
        "exact",
        "--data",
        "mnist",
        "--data-count",
        "200",
        "--sampler",
        "ddim",
        "--steps",
        "10",
        "--count",
        "5",
        "--batch",
        "2",
        "--seed",
        "3",
        "-o",
        grid.to_str().unwrap(),
        "--out-dir",
        dir.to_str().unwrap(),
        "--trajectory",
        traj.to_str().unwrap(),
        "--scale",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g = image::open(&grid).unwrap();
    // 5 samples → 3 columns × 2 rows of 28 px with 2 px padding.
    assert_eq!((g.width(), g.height()), (3 * 28 + 4 * 2, 2 * 28 + 3 * 2));
    for i in 0..5 {
        let p = dir.join(format!("sample-{i:04}.png"));
        let im = image::open(&p).unwrap();
        assert_eq!((im.width(), im.height()), (28, 28));
    }
    assert!(!dir.join("sample-0005.png").exists());
    let t = image::open(&traj).unwrap();
    assert_eq!(t.height(), 2 * 28 + 3 * 2);
    // Sample 0 of seed 3 is the same whether it ran alone or in a batch.
    let alone = d.join("alone");
    let o = difflab(&[
        "--device",
        "cpu",
        "sample",
        "--data-count",
        "200",
        "--steps",
        "10",
        "--count",
        "1",
        "--seed",
        "3",
        "--out-dir",
        alone.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = image::open(alone.join("sample-0000.png"))
        .unwrap()
        .to_rgb8();
    let b = image::open(dir.join("sample-0000.png")).unwrap().to_rgb8();
    assert_eq!(a.as_raw(), b.as_raw());
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let d = tmp("bad");
    let corrupt = d.join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    let out = d.join("o.png");
    let out = out.to_str().unwrap();
    let c = corrupt.to_str().unwrap();
    assert_bad_input(&["noise", c, "-o", out], "not a readable image");
    assert_bad_input(&["noise", "/no/such/file.png", "-o", out], "no such file");
    let good = d.join("good.png");
    write_png(&good, 8, 8);
    let g = good.to_str().unwrap();
    assert_bad_input(&["noise", g, "--t", "0,1000", "-o", out], "out of range");
    assert_bad_input(&["noise", g, "--t", "0,x", "-o", out], "not a timestep");
    assert_bad_input(
        &["sample", "--steps", "1001", "-o", out],
        "more than the t = 1000",
    );
    assert_bad_input(&["sample", "--eta", "1.5", "-o", out], "eta");
    assert_bad_input(&["sample", "--eta", "-0.1", "-o", out], "eta");
    assert_bad_input(&["sample", "--count", "0", "-o", out], "count");
    assert_bad_input(&["sample", "--steps", "0", "-o", out], "at least 1");
    assert_bad_input(&["schedule", "--beta-end", "1.0"], "0 < β < 1");
    assert_bad_input(
        &["schedule", "--beta-start", "0.5", "--beta-end", "0.1"],
        "larger than",
    );
    assert_bad_input(&["schedule", "--timesteps", "0"], "at least 1");
    let run = d.join("run");
    let run = run.to_str().unwrap();
    for gamma in ["-1", "0", "nan"] {
        assert_bad_input(
            &[
                "train",
                "--min-snr-gamma",
                gamma,
                "--steps",
                "5",
                "--out",
                run,
            ],
            "--min-snr-gamma must be a number > 0",
        );
    }
    assert!(!Path::new(run).exists(), "a refused run made its folder");
    assert_bad_input(&["schedule", "--schedule", "quadratic"], "invalid value");
    // clap's own errors, folded into one line with the choices or the tip they carry.
    assert_bad_input(
        &["sample", "--sampler", "bogus", "-o", out],
        "'bogus' for '--sampler <sampler>' (possible values: ddpm, ddim, dpm-solver++, dpm-solver, sde-dpm-solver++, euler, euler-a, heun, unipc, flow-euler)",
    );
    assert_bad_input(&["smaple"], "similar subcommand exists: 'sample'");
    assert_bad_input(
        &["sample", "--nope"],
        "unexpected argument '--nope' found (see --help)",
    );
    assert_bad_input(&["sample", "--steps", "abc"], "invalid digit");
    assert_bad_input(
        &["interpolate"],
        "not provided: --seed-a <seed_a>, --seed-b <seed_b>, --output <output>",
    );
    // Help is not an error: clap prints it to stdout and exits 0.
    let help = difflab(&["sample", "--help"]);
    assert_eq!(help.status.code(), Some(0), "{}", stderr(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: difflab sample"));
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"not an image").unwrap();
    assert_bad_input(
        &["sample", "--data", empty.to_str().unwrap(), "-o", out],
        "no readable images",
    );
    assert_bad_input(&["noise", g, "-o", "/no/such/dir/x.png"], "does not exist");
    assert!(
        !Path::new(out).exists(),
        "a failed command wrote its output"
    );
}

#[test]
fn a_failed_write_leaves_the_old_file_alone() {
    let d = tmp("keep");
    let out = d.join("strip.png");
    std::fs::write(&out, b"precious").unwrap();
    let o = difflab(&["noise", "/no/such/file.png", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
}

fn gif_frames(path: &Path) -> Vec<image::Frame> {
    use image::AnimationDecoder;
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("gif"));
    image::codecs::gif::GifDecoder::new(file)
        .expect("a GIF")
        .into_frames()
        .collect_frames()
        .expect("frames")
}

/// `difflab interpolate --model unet` decodes with the U-Net, as the app's panel does: α = 0 is
/// exactly `difflab sample --model unet` of seed A, α = 1 of seed B; a label guides every frame.
#[test]
fn interpolate_decodes_with_the_u_net() {
    let d = tmp("interp-unet");
    let row = d.join("row.png");
    let r = row.to_str().unwrap();
    let unet = ["--model", "unet", "--steps", "5", "--scale", "1"];
    let mut args = interpolate_args(&["--frames", "3", "--blend", "slerp", "-o", r]);
    args.extend(unet.iter().map(ToString::to_string));
    let o = difflab(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&row).expect("png").to_rgb8();
    assert_eq!(img.dimensions(), (3 * 28 + 4 * 2, 28 + 2 * 2));
    let cell = |img: &image::RgbImage, k: u32| {
        image::imageops::crop_imm(img, 2 + k * 30, 2, 28, 28).to_image()
    };
    for (seed, k) in [("1", 0), ("2", 2)] {
        let one = d.join(format!("seed{seed}.png"));
        let o = difflab(&[
            "sample",
            "--model",
            "unet",
            "--seed",
            seed,
            "--count",
            "1",
            "--steps",
            "5",
            "--scale",
            "1",
            "-o",
            one.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let plain = image::open(&one).expect("png").to_rgb8();
        assert_eq!(
            cell(&img, k),
            cell(&plain, 0),
            "frame {k} is seed {seed}'s sample"
        );
    }
    // Guided to a 3: every frame changes.
    let guided = d.join("three.png");
    let mut args = interpolate_args(&[
        "--frames",
        "3",
        "--blend",
        "slerp",
        "--label",
        "3",
        "-o",
        guided.to_str().unwrap(),
    ]);
    args.extend(unet.iter().map(ToString::to_string));
    let o = difflab(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let three = image::open(&guided).expect("png").to_rgb8();
    assert!((0..3).all(|k| cell(&three, k) != cell(&img, k)));
    // What does not go together is refused, one line each.
    for (rest, needle) in [
        (
            &["--label", "3", "-o", r][..],
            "--label needs a class-conditional u-net",
        ),
        (
            &["--weights", "w.safetensors", "-o", r],
            "--weights goes with --model unet",
        ),
        (
            &["--model", "unet", "--label", "12", "-o", r],
            "label 12 is out of range",
        ),
        (
            &["--model", "unet", "--data-count", "9", "-o", r],
            "--data-count chooses",
        ),
    ] {
        let args = interpolate_args(rest);
        assert_bad_input(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sample_gif_and_interpolate_write_what_they_say() {
    let d = tmp("gif");
    let gif = d.join("traj.gif");
    let o = difflab(&[
        "sample",
        "--steps",
        "12",
        "--count",
        "2",
        "--data-count",
        "200",
        "--gif",
        gif.to_str().unwrap(),
        "--gif-frames",
        "5",
        "--gif-scale",
        "2",
        "-o",
        d.join("s.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let frames = gif_frames(&gif);
    assert_eq!(frames.len(), 5, "at most --gif-frames, picked evenly");
    assert_eq!(frames[0].buffer().dimensions(), (56, 56));

    let row = d.join("row.png");
    let igif = d.join("row.gif");
    let args = interpolate_args(&[
        "--frames",
        "6",
        "--data-count",
        "300",
        "-o",
        row.to_str().unwrap(),
        "--gif",
        igif.to_str().unwrap(),
        "--scale",
        "1",
    ]);
    let o = difflab(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&row).expect("png").to_rgb8();
    // Two rows (slerp, lerp) of 6 digits with 2 px gaps.
    assert_eq!(img.dimensions(), (6 * 28 + 7 * 2, 2 * 28 + 3 * 2));
    assert_eq!(gif_frames(&igif).len(), 6);
    let err = stderr(&o);
    assert!(err.contains("Slerp") && err.contains("Lerp"), "{err}");

    // Too few frames, and too many (it used to run until it ran out of memory).
    for frames in ["1", "1000000000"] {
        let args = interpolate_args(&["--frames", frames, "-o", row.to_str().unwrap()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_bad_input(&args, "between 2 and 256 frames");
    }
    assert_bad_input(
        &[
            "sample",
            "--steps",
            "5",
            "-o",
            row.to_str().unwrap(),
            "--gif",
            igif.to_str().unwrap(),
            "--gif-scale",
            "0",
        ],
        "gif-scale",
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn toy_trains_samples_and_plots() {
    let d = tmp("toy");
    let png = d.join("toy.png");
    let o = difflab(&[
        "toy",
        "--data",
        "two-moons",
        "--train-steps",
        "200",
        "--hidden",
        "32",
        "--samples",
        "300",
        "--steps",
        "20",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    use image::GenericImageView;
    assert_eq!(image::open(&png).expect("png").dimensions(), (400, 400));
    let err = stderr(&o);
    assert!(
        err.contains("trained 200 steps") && err.contains("energy distance"),
        "{err}"
    );
    assert_bad_input(
        &["toy", "--eta", "2", "-o", png.to_str().unwrap()],
        "η must be in [0, 1]",
    );
    assert_bad_input(
        &["toy", "--samples", "0", "-o", png.to_str().unwrap()],
        "--samples",
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A folder of 12 little 8×8 grey images (and one that is not an image).
fn tiny_image_folder(name: &str) -> PathBuf {
    let dir = tmp(name);
    for k in 0..12u32 {
        let img = image::GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([if (x + k) % 3 == 0 || y == k % 8 {
                255
            } else {
                0
            }])
        });
        img.save(dir.join(format!("img{k:02}.png"))).unwrap();
    }
    std::fs::write(dir.join("broken.png"), b"not a png").unwrap();
    dir
}

/// `difflab train` of an 8-channel net on 8×8 grey images from `data` into `out`, batch 4,
/// checkpointing and sampling every so many steps (the steps themselves are the caller's).
fn tiny_train_args(
    data: &Path,
    out: &Path,
    checkpoint_every: &str,
    sample_every: &str,
) -> Vec<String> {
    [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--size",
        "8",
        "--gray",
        "--base-channels",
        "8",
        "--channel-mult",
        "1,2",
        "--batch",
        "4",
        "--checkpoint-every",
        checkpoint_every,
        "--sample-every",
        sample_every,
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

#[test]
fn train_widens_a_net_of_half_the_width() {
    let data = tiny_image_folder("widen-data");
    let narrow = tmp("widen-narrow");
    let wide = tmp("widen-wide");
    let _ = std::fs::remove_dir_all(&narrow);
    let _ = std::fs::remove_dir_all(&wide);
    let mut args = tiny_train_args(&data, &narrow, "2", "0");
    args.extend(["--steps".into(), "2".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = difflab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let weights = narrow.join("model.safetensors");
    let mut args = tiny_train_args(&data, &wide, "2", "0");
    let base = args.iter().position(|a| a == "--base-channels").unwrap();
    args[base + 1] = "16".into();
    args.extend([
        "--steps".into(),
        "2".into(),
        "--init-from".into(),
        weights.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = difflab(&args);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("widened from 8 to 16 base channels"), "{err}");
    let bytes = std::fs::read(wide.join("model.safetensors")).unwrap();
    let config = difflab::model::unet::read_config(&bytes, "wide").unwrap();
    assert_eq!(config.base_channels, 16);
    // The record counts the narrow net's 2 steps and the wide run's 2.
    let record = difflab::model::unet::read_training_record(&bytes, "wide")
        .unwrap()
        .unwrap();
    assert_eq!(record.steps_trained, 4);
}

#[test]
fn train_writes_losses_checkpoints_samples_and_resumes() {
    let data = tiny_image_folder("train-data");
    let out = tmp("train-out");
    let _ = std::fs::remove_dir_all(&out);
    let common = tiny_train_args(&data, &out, "3", "6");
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let mut args = common.clone();
    args.extend(["--steps", "6"]);
    let o = difflab(&args);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("broken.png"),
        "bad images are skipped with a warning: {err}"
    );
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(csv.starts_with("step,loss,lr\n0,"));
    assert!(out.join("checkpoint.bin").is_file());
    assert!(out.join("samples/step-000006.png").is_file());
    let weights = out.join("model.safetensors");
    assert!(weights.is_file());

    // Starting again over a run is refused; --resume continues it to 9 steps.
    assert_bad_input(&args, "--resume");
    // Without its checkpoint, the run's trained weights still are not replaced; a resume with
    // nothing to resume makes no folder; an unconditional run has no labels to drop.
    let kept = out.join("checkpoint.kept");
    std::fs::rename(out.join("checkpoint.bin"), &kept).unwrap();
    assert_bad_input(&args, "a trained model");
    std::fs::rename(&kept, out.join("checkpoint.bin")).unwrap();
    let nowhere = tmp("train-nowhere").join("run");
    let mut resume_nothing = tiny_train_args(&data, &nowhere, "3", "6");
    resume_nothing.push("--resume".into());
    let resume_nothing: Vec<&str> = resume_nothing.iter().map(String::as_str).collect();
    assert_bad_input(&resume_nothing, "no run to resume");
    assert!(!nowhere.exists());
    let mut dropout = tiny_train_args(&data, &nowhere, "3", "6");
    dropout.extend(["--label-dropout".into(), "0.5".into()]);
    let dropout: Vec<&str> = dropout.iter().map(String::as_str).collect();
    assert_bad_input(&dropout, "needs --classes");
    let mut balance = tiny_train_args(&data, &nowhere, "3", "6");
    balance.push("--balance-classes".into());
    let balance: Vec<&str> = balance.iter().map(String::as_str).collect();
    assert_bad_input(&balance, "--balance-classes needs --classes");
    let mut missing_init = tiny_train_args(&data, &nowhere, "3", "6");
    missing_init.extend(["--init-from".into(), "no-such.safetensors".into()]);
    let missing_init: Vec<&str> = missing_init.iter().map(String::as_str).collect();
    assert_bad_input(&missing_init, "no-such.safetensors");
    assert!(!nowhere.exists(), "a refused run made its folder");
    let mut more = common.clone();
    more.extend(["--steps", "9", "--resume"]);
    let o = difflab(&more);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv2 = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv2.lines().count(), 10, "{csv2}");
    assert!(
        csv2.starts_with(&csv),
        "the first 6 losses are kept as they were"
    );
    assert!(!stderr(&o).contains("ignored"), "{}", stderr(&o));

    // Options a resumed run cannot change are named, not silently dropped; the run goes on.
    // --batch 64 is typed at its default (the checkpoint's is 4): it counts as typed.
    let mut changed = common.clone();
    let batch = changed.iter().position(|a| *a == "--batch").unwrap();
    changed[batch + 1] = "64";
    changed.extend([
        "--steps",
        "10",
        "--resume",
        "--min-snr-gamma",
        "5",
        "--seed",
        "3",
        "--blocks",
        "1",
    ]);
    let o = difflab(&changed);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let ignored: Vec<&str> = err.lines().filter(|l| l.contains("is ignored")).collect();
    assert_eq!(ignored.len(), 3, "{err}");
    // Each: the flag as given, and the value the checkpoint keeps.
    let named = [
        ("--batch 64", "4"),
        ("--min-snr-gamma 5", "none"),
        ("--seed 3", "0"),
    ];
    for (line, (given, kept)) in ignored.iter().zip(named) {
        assert!(
            line.starts_with(&format!("difflab: {given} is ignored"))
                && line.contains(&format!("keeps its checkpoint's value ({kept})")),
            "{err}"
        );
    }
    let csv3 = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv3.lines().count(), 11, "{csv3}");
    // A resumed run only goes on: fewer steps than the checkpoint's is refused (it was an
    // overflow panic), and the run is left as it was.
    let mut fewer = common.clone();
    fewer.extend(["--steps", "4", "--resume"]);
    assert_bad_input(&fewer, "fewer than the 10 steps");
    let csv4 = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv4, csv3);

    // Its weights sample through `sample --model unet --weights`.
    let grid = out.join("grid.png");
    let o = difflab(&[
        "sample",
        "--model",
        "unet",
        "--weights",
        weights.to_str().unwrap(),
        "--steps",
        "5",
        "--count",
        "4",
        "-o",
        grid.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(image::open(&grid).is_ok());
}

/// A training run killed (SIGKILL, no chance to save) at several moments and resumed each time
/// ends bit for bit where an uninterrupted run ends: the same weights file, the same losses.
#[test]
fn a_killed_training_run_resumes_bit_exactly() {
    let data = tiny_image_folder("kill-data");
    let run = |out: &Path| -> Vec<String> {
        let _ = std::fs::remove_dir_all(out);
        let mut args = tiny_train_args(&data, out, "4", "1000");
        args.extend(["--steps".to_string(), "40".to_string()]);
        args
    };
    let whole = tmp("kill-whole");
    let o = Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args(run(&whole))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let killed = tmp("kill-killed");
    let args = run(&killed);
    let csv = killed.join("loss.csv");
    let rows =
        |p: &Path| std::fs::read_to_string(p).map_or(0, |s| s.lines().count().saturating_sub(1));
    // Kill after about 7, 18 and 29 logged steps (between checkpoints, and the writes of the
    // checkpoint itself race with the kill), resuming each time; then let it finish.
    let mut resume = false;
    let mut kills = 0;
    for kill_after in [7, 18, 29, usize::MAX] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_difflab"));
        cmd.args(&args);
        if resume {
            cmd.arg("--resume");
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "{err}");
                break;
            }
            if rows(&csv) >= kill_after {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                break;
            }
            assert!(started.elapsed().as_secs() < 120, "the run stalled");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        resume = true;
    }
    assert!(kills >= 2, "the run was killed mid-way ({kills} times)");
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        std::fs::read_to_string(whole.join("loss.csv")).unwrap(),
        "the same losses, each step once"
    );
    // The same tensors byte for byte, and the same header (burn writes the metadata map in
    // hash order, so the header is compared as JSON, not as bytes).
    let split = |p: PathBuf| {
        let b = std::fs::read(p).unwrap();
        let n = 8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&b[8..n]).unwrap();
        (header, b[n..].to_vec())
    };
    let (h_killed, data_killed) = split(killed.join("model.safetensors"));
    let (h_whole, data_whole) = split(whole.join("model.safetensors"));
    assert!(data_killed == data_whole, "the same weights, byte for byte");
    assert_eq!(h_killed, h_whole, "the same config and training record");
}

#[test]
fn bad_weights_exit_2_naming_the_file() {
    let dir = tmp("bad-weights");
    let out = dir.join("x.png");
    let out = out.to_str().unwrap();
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    let sample = |w: &Path| {
        vec![
            "sample".to_string(),
            "--model".into(),
            "unet".into(),
            "--weights".into(),
            w.to_str().unwrap().into(),
            "-o".into(),
            out.into(),
        ]
    };
    let args = sample(&junk);
    let args: Vec<&str> = args.iter().map(std::string::String::as_str).collect();
    assert_bad_input(&args, "junk.safetensors");
    let cut = dir.join("cut.safetensors");
    let shipped = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/mnist-unet.safetensors"),
    )
    .unwrap();
    std::fs::write(&cut, &shipped[..shipped.len() - 1000]).unwrap();
    let args = sample(&cut);
    let args: Vec<&str> = args.iter().map(std::string::String::as_str).collect();
    assert_bad_input(&args, "truncated");
    let args = sample(&dir.join("missing.safetensors"));
    let args: Vec<&str> = args.iter().map(std::string::String::as_str).collect();
    assert_bad_input(&args, "missing.safetensors");
    assert_bad_input(
        &["sample", "--weights", junk.to_str().unwrap(), "-o", out],
        "--model unet",
    );
    assert_bad_input(&["eval", "--count", "1"], "--count");
    assert_bad_input(&["eval", "--spacing", "sideways"], "sideways");
    assert_bad_input(
        &["eval", "--epochs", "18446744073709551615"],
        "--epochs must be between 1 and 1,000",
    );
    // The U-Net predicts ε or v; `sample` is not offered (it was listed, then refused).
    assert_bad_input(
        &[
            "train",
            "--out",
            dir.to_str().unwrap(),
            "--prediction",
            "sample",
        ],
        "sample",
    );
    assert_bad_input(&["bench", "--runs", "0"], "--runs");
    assert_bad_input(
        &["train", "--out", dir.to_str().unwrap(), "--lr", "5"],
        "--lr",
    );
}

#[test]
fn eval_judges_the_shipped_model() {
    let worst = tmp("eval").join("worst.png");
    // On the app's spacing (the default here is trailing, the README's).
    let o = difflab(&[
        "eval",
        "--count",
        "20",
        "--batch",
        "20",
        "--steps",
        "10",
        "--epochs",
        "1",
        "--spacing",
        "leading",
        "--worst-grid",
        worst.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // The 20 samples, least sure first, in a 5×4 grid of 28 px cells at scale 2 with a 2 px pad.
    let img = image::open(&worst).unwrap();
    let (w, h) = (img.width(), img.height());
    assert_eq!(
        (w, h),
        (5 * 56 + 6 * 2, 4 * 56 + 5 * 2),
        "{}",
        worst.display()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("20 samples (DDIM, 10 steps, η = 0, leading spacing;"),
        "{out}"
    );
    let conf: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("mean classifier confidence"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no confidence in: {out}"));
    assert!((0.1..=1.0).contains(&conf), "{out}");
    assert!(out.contains("Fréchet distance"), "{out}");
    assert!(out.contains("confidence by digit read    0: "), "{out}");
    assert!(out.contains("least sure (read as, confidence) "), "{out}");
    assert!(err.contains("% accurate"), "{err}");
}

/// An output path is checked before any work: it may not be an input (the image, the weights,
/// a file of the data folder), another output, or a read-only file, and a refused run has
/// written nothing.
#[test]
fn an_output_never_destroys_an_input_or_another_output() {
    let dir = tmp("outputs");
    let image = dir.join("cat.png");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/assets/images/chelsea.png"),
        &image,
    )
    .unwrap();
    let before = std::fs::read(&image).unwrap();
    let img = image.to_str().unwrap();
    assert_bad_input(&["noise", img, "-o", img], "is also the input");
    let data = tiny_image_folder("outputs-data");
    let data_file = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    let data_before = std::fs::read(&data_file).unwrap();
    // A two-step sample of the exact denoiser on the tiny folder, with these outputs.
    let data_arg = data.to_str().unwrap().to_string();
    let sample_to = |outputs: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--device", "cpu", "sample", "--model", "exact", "--data", &data_arg, "--size", "8",
            "--steps", "2", "--count", "1",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.extend(outputs.iter().map(ToString::to_string));
        args
    };
    let refused = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_bad_input(&args, needle);
    };
    refused(
        sample_to(&["-o", data_file.to_str().unwrap()]),
        "input folder",
    );
    assert_eq!(std::fs::read(&data_file).unwrap(), data_before);

    let keep = dir.join("keep.png");
    std::fs::write(&keep, b"mine").unwrap();
    let k = keep.to_str().unwrap();
    // The same file twice (once through a `./` detour), and a GIF path that is a folder: both
    // refused before anything is written.
    let detour = dir.join(".").join("keep.png");
    assert_bad_input(
        &["toy", "-o", k, "--gif", detour.to_str().unwrap()],
        "are the same file",
    );
    std::fs::create_dir_all(dir.join("a-folder")).unwrap();
    let folder = dir.join("a-folder");
    refused(
        sample_to(&["-o", k, "--gif", folder.to_str().unwrap()]),
        "is a folder",
    );
    assert_eq!(std::fs::read(&keep).unwrap(), b"mine");
    set_read_only(&keep, true);
    assert_bad_input(&["schedule", "-o", k], "read-only");
    assert_eq!(std::fs::read(&keep).unwrap(), b"mine");
    assert_eq!(std::fs::read(&image).unwrap(), before);
    set_read_only(&keep, false);

    // --out-dir's files are outputs too: -o on one of them, or a read-only one.
    let out_dir = dir.join("samples");
    std::fs::create_dir_all(&out_dir).unwrap();
    let first = out_dir.join("sample-0000.png");
    refused(
        sample_to(&[
            "--out-dir",
            out_dir.to_str().unwrap(),
            "-o",
            first.to_str().unwrap(),
        ]),
        "are the same file",
    );
    std::fs::write(&first, b"kept").unwrap();
    set_read_only(&first, true);
    refused(
        sample_to(&["--out-dir", out_dir.to_str().unwrap()]),
        "read-only",
    );
    assert_eq!(std::fs::read(&first).unwrap(), b"kept");
    set_read_only(&first, false);
    // interpolate guards its data folder as sample does.
    let args = interpolate_args(&[
        "--frames",
        "2",
        "--data",
        &data_arg,
        "--size",
        "8",
        "-o",
        data_file.to_str().unwrap(),
    ]);
    refused(args, "input folder");
    assert_eq!(std::fs::read(&data_file).unwrap(), data_before);
}

/// Two outputs meeting through a link that does not point anywhere yet, and a loop of links,
/// are refused before anything is written (symbolic links: Unix only; on Windows making one
/// needs developer mode or administrator rights).
#[cfg(unix)]
#[test]
fn outputs_meeting_through_links_are_refused() {
    let dir = tmp("outputs-links");
    use std::os::unix::fs::symlink;
    let target = dir.join("not-yet.png");
    symlink("not-yet.png", dir.join("dangling.png")).unwrap();
    let dangling = dir.join("dangling.png");
    assert_bad_input(
        &[
            "toy",
            "-o",
            target.to_str().unwrap(),
            "--gif",
            dangling.to_str().unwrap(),
        ],
        "are the same file",
    );
    symlink("loop-b", dir.join("loop-a")).unwrap();
    symlink("loop-a", dir.join("loop-b")).unwrap();
    assert_bad_input(
        &["schedule", "-o", dir.join("loop-a").to_str().unwrap()],
        "loop of symbolic links",
    );
    assert!(!target.exists());
    let loop_a = std::fs::symlink_metadata(dir.join("loop-a")).unwrap();
    assert!(loop_a.file_type().is_symlink(), "the loop was replaced");
}

/// Numbers that overflowed arithmetic (a panic, exit 101) or asked for gigabytes are refused
/// with one line and exit 2, before any work.
#[test]
fn overflowing_and_huge_values_are_refused() {
    let max = u64::MAX.to_string();
    assert_bad_input(
        &["timesteps", "--steps", "10", "--steps-offset", &max],
        "steps_offset",
    );
    assert_bad_input(
        &["timesteps", "--steps", "3", "--timesteps", &max],
        "too large",
    );
    let out = tmp("huge").join("toy.png");
    let o = out.to_str().unwrap();
    let toy = |flag: &str, value: &str| {
        vec![
            "--device".to_string(),
            "cpu".into(),
            "toy".into(),
            "--train-steps".into(),
            "2".into(),
            "--samples".into(),
            "10".into(),
            "--steps".into(),
            "2".into(),
            "-o".into(),
            o.into(),
            flag.into(),
            value.into(),
        ]
    };
    for (flag, value, needle) in [
        ("--hidden", "0", "hidden units"),
        ("--hidden", "1000000000", "hidden units"),
        ("--batch", max.as_str(), "too large"),
    ] {
        let args = toy(flag, value);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_bad_input(&args, needle);
    }
    assert_bad_input(
        &["toy", "--train-steps", &max, "-o", o],
        "--train-steps must be at most",
    );
    assert!(!out.exists());
    // Pictures too large to hold, refused before the work that would fill them.
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/images/chelsea.png");
    let film = tmp("huge").join("film.png");
    let f = film.to_str().unwrap();
    let many_t: Vec<String> = (0..101).map(|t| t.to_string()).collect();
    let many_t = many_t.join(",");
    assert_bad_input(&["noise", img, "-o", f, "--t", &many_t], "at most 100");
    assert_bad_input(
        &["noise", img, "-o", f, "--max-size", "100000"],
        "--max-size",
    );
    let grid = tmp("huge").join("grid.png");
    let g = grid.to_str().unwrap();
    for (flag, value, needle) in [
        ("--scale", "0", "--scale"),
        ("--scale", "1000", "--scale"),
        ("--count", "1000000000", "--count"),
        ("--scale", "16", "the picture would be"),
    ] {
        let count = if flag == "--count" { "1" } else { "2000" };
        let mut args = vec![
            "--device", "cpu", "sample", "--model", "unet", "--steps", "2", "-o", g, "--label",
            "3", "--count", count, flag, value,
        ];
        if flag == "--count" {
            args.drain(11..13);
        }
        assert_bad_input(&args, needle);
    }
    assert!(!film.exists() && !grid.exists());
}

/// An option that does not apply to what was asked is refused, not silently ignored; typed at
/// a value equal to its default it still counts as typed.
#[test]
fn options_that_would_be_ignored_are_refused() {
    let out = tmp("ignored").join("s.png");
    let o = out.to_str().unwrap();
    let base = [
        "--device", "cpu", "sample", "--steps", "2", "--count", "1", "-o", o,
    ];
    for (extra, needle) in [
        (
            &["--variance", "fixed-small"][..],
            "--variance applies to ddpm",
        ),
        (
            &["--spacing", "trailing", "--steps-offset", "0"][..],
            "--steps-offset applies to leading",
        ),
        (
            &["--model", "unet", "--data", "mnist"][..],
            "--data chooses",
        ),
        (&["--model", "unet", "--size", "28"][..], "--size chooses"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert_bad_input(&args, &needle.to_lowercase());
    }
    // Where they apply, they are taken.
    let o = difflab(&[
        "--device",
        "cpu",
        "sample",
        "--sampler",
        "ddpm",
        "--variance",
        "fixed-large",
        "--steps-offset",
        "1",
        "--steps",
        "2",
        "--count",
        "1",
        "--data-count",
        "20",
        "-o",
        o,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.is_file());
}

#[test]
fn average_writes_a_soup_that_samples_and_refuses_what_does_not_average() {
    use burn::tensor::Device;
    let dir = tmp("average");
    let config = crate::common::tiny_unet();
    for (seed, name) in [(1, "a"), (2, "b")] {
        let net = config.init_seeded(&Device::flex(), seed).unwrap();
        net.save_safetensors(&config, &dir.join(format!("{name}.safetensors")))
            .unwrap();
    }
    let wide = difflab::model::UNetConfig {
        base_channels: 16,
        ..config.clone()
    };
    wide.init_seeded(&Device::flex(), 3)
        .unwrap()
        .save_safetensors(&wide, &dir.join("wide.safetensors"))
        .unwrap();
    let p = |n: &str| dir.join(n).display().to_string();
    let o = difflab(&[
        "average",
        &p("a.safetensors"),
        &p("b.safetensors"),
        "-o",
        &p("soup.safetensors"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = difflab(&[
        "--device",
        "cpu",
        "sample",
        "--model",
        "unet",
        "--weights",
        &p("soup.safetensors"),
        "--steps",
        "2",
        "--count",
        "2",
        "-o",
        &p("soup.png"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_bad_input(
        &["average", &p("a.safetensors"), "-o", &p("x.safetensors")],
        "2 values required",
    );
    assert_bad_input(
        &[
            "average",
            &p("a.safetensors"),
            &p("wide.safetensors"),
            "-o",
            &p("x.safetensors"),
        ],
        "base_channels 16 against 8",
    );
    assert_bad_input(
        &[
            "average",
            &p("a.safetensors"),
            &p("missing.safetensors"),
            "-o",
            &p("x.safetensors"),
        ],
        "cannot read it",
    );
    assert!(!dir.join("x.safetensors").exists());
}

#[test]
fn train_takes_the_groupnorm_groups() {
    let data = tiny_image_folder("groups-data");
    let out = tmp("groups-out");
    let _ = std::fs::remove_dir_all(&out);
    let mut args = tiny_train_args(&data, &out, "2", "0");
    let base = args.iter().position(|a| a == "--base-channels").unwrap();
    args[base + 1] = "12".into();
    args.extend(["--steps".into(), "2".into()]);
    let refused: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_bad_input(&refused, "12 channels are not divisible into 8 groups");
    assert!(!out.exists(), "a refused run made its folder");
    args.extend(["--groups".into(), "4".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = difflab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let config = difflab::model::unet::read_config(&bytes, "groups").unwrap();
    assert_eq!((config.base_channels, config.groups), (12, 4));
}

#[test]
fn gui_refuses_a_bad_weights_file_before_opening_a_window() {
    let d = tmp("gui-weights");
    let small = d.join("small.safetensors");
    let config = crate::common::tiny_unet().with_in_channels(2);
    config
        .init_seeded(&crate::common::flex(), 1)
        .unwrap()
        .save_safetensors(&config, &small)
        .unwrap();
    assert_bad_input(
        &["gui", "--weights", small.to_str().unwrap()],
        "this u-net makes 8×8 images with 2 channels",
    );
    assert_bad_input(&["gui", "--weights", "README.md"], "safetensors");
    let missing = d.join("missing.safetensors");
    assert_bad_input(
        &["gui", "--weights", missing.to_str().unwrap()],
        "missing.safetensors",
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `sample --tensor` writes the samples before they are rounded: the same bits on a second run,
/// and the PNGs of --out-dir are those values rounded to pixels.
#[test]
fn sample_writes_its_samples_as_a_tensor() {
    use difflab::data::tensor_file::read_f32_safetensors;
    let data = tiny_image_folder("tensor-data");
    let dir = tmp("tensor");
    let run = |name: &str| -> Vec<f32> {
        let file = dir.join(format!("{name}.safetensors"));
        let pngs = dir.join(name);
        let o = difflab(&[
            "--device",
            "cpu",
            "sample",
            "--model",
            "exact",
            "--data",
            data.to_str().unwrap(),
            "--size",
            "8",
            "--gray",
            "--steps",
            "5",
            "--count",
            "3",
            "--seed",
            "11",
            "--out-dir",
            pngs.to_str().unwrap(),
            "--tensor",
            file.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let (shape, values) =
            read_f32_safetensors(&std::fs::read(&file).unwrap(), "samples").unwrap();
        assert_eq!(shape, [3, 1, 8, 8]);
        for i in 0..3 {
            let png = image::open(pngs.join(format!("sample-{i:04}.png")))
                .unwrap()
                .to_luma8();
            for (k, p) in png.pixels().enumerate() {
                let v = values[i * 64 + k];
                let want = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round();
                assert!(
                    (f32::from(p.0[0]) - want).abs() <= 1.0,
                    "sample {i} pixel {k}: {} for {v}",
                    p.0[0]
                );
            }
        }
        values
    };
    let first = run("a");
    let second = run("b");
    assert!(first.iter().any(|v| v.abs() > 0.1), "{first:?}");
    assert_eq!(
        first.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        second.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The solvers after DDIM from the command line: a run reports its NFE, `timesteps` lists a
/// solver's model calls (Heun: 2N − 1), and a bad combination is one line and exit 2.
#[test]
fn the_solvers_after_ddim_sample_and_refuse_bad_combinations() {
    assert_bad_input(
        &[
            "sample",
            "--sampler",
            "euler",
            "--order",
            "2",
            "-o",
            "x.png",
        ],
        "--order applies to",
    );
    assert_bad_input(
        &[
            "sample",
            "--sampler",
            "dpm-solver++",
            "--order",
            "4",
            "-o",
            "x.png",
        ],
        "orders 1 to 3",
    );
    assert_bad_input(
        &["sample", "--sampler", "ddpm", "--karras", "-o", "x.png"],
        "--karras and --order apply",
    );
    assert_bad_input(
        &["sample", "--sampler", "heun", "--eta", "0.5", "-o", "x.png"],
        "--eta",
    );
    assert_bad_input(
        &["toy", "--sampler", "unipc", "-o", "x.png"],
        "runs ddpm or ddim",
    );
    assert_bad_input(
        &["eval", "--sampler", "heun", "--order", "2", "--count", "10"],
        "--order applies to",
    );
    let o = difflab(&["timesteps", "--sampler", "heun", "--steps", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nfe"], 19, "{v}");
    assert_eq!(v["calls"].as_array().unwrap().len(), 19);
    let o = difflab(&[
        "timesteps",
        "--sampler",
        "dpm-solver++",
        "--karras",
        "--steps",
        "10",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["solver"], "DPM-Solver++ 2M Karras");
    let sigmas: Vec<f64> = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sigma"].as_f64().unwrap())
        .collect();
    assert!(sigmas.windows(2).all(|w| w[0] > w[1]), "{sigmas:?}");

    // DPM-Solver++ 2M on the exact denoiser: 10 calls, and the same bits twice.
    let data = tiny_image_folder("solver-data");
    let dir = tmp("solver");
    let run = |name: &str, sampler: &str| -> (Vec<f32>, String) {
        let file = dir.join(format!("{name}.safetensors"));
        let o = difflab(&[
            "--device",
            "cpu",
            "sample",
            "--model",
            "exact",
            "--data",
            data.to_str().unwrap(),
            "--size",
            "8",
            "--gray",
            "--sampler",
            sampler,
            "--steps",
            "10",
            "--count",
            "2",
            "--tensor",
            file.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&file).unwrap();
        let (_, v) = difflab::data::tensor_file::read_f32_safetensors(&bytes, "samples").unwrap();
        (v, stderr(&o))
    };
    let (a, err) = run("a", "dpm-solver++");
    assert!(err.contains("10 model evaluations (NFE)"), "{err}");
    let (b, _) = run("b", "dpm-solver++");
    assert_eq!(a, b);
    assert!(a.iter().all(|v| v.is_finite()) && a.iter().any(|v| v.abs() > 0.1));
    let (_, err) = run("c", "heun");
    assert!(err.contains("19 model evaluations (NFE)"), "{err}");

    // interpolate decodes with a deterministic solver, and refuses a noisy one.
    let out = dir.join("row.png");
    let args: Vec<String> =
        interpolate_args(&["--sampler", "euler-a", "-o", out.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_bad_input(&args, "deterministic sampler");
    let args = interpolate_args(&[
        "--device",
        "cpu",
        "--sampler",
        "unipc",
        "--steps",
        "8",
        "--frames",
        "3",
        "--data",
        data.to_str().unwrap(),
        "--size",
        "8",
        "--gray",
        "-o",
        out.to_str().unwrap(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = difflab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(image::open(&out).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
