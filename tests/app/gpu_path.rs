//! The GPU display path, on whatever wgpu adapter there is (lavapipe in CI): burn computes on a
//! device created the way eframe creates it, the compute shader writes tensors into textures,
//! and those equal the CPU-rendered pixels within 1/255, whatever the tensor's strides.
//! The app itself runs on the shared device and shows GPU textures.

use burn::tensor::Tensor;
use burn::tensor::wgpu::wgpu;
use difflab::app::{AppOptions, DiffLabApp, RepaintPace, ToyModel, wgpu_setup};
use difflab::data::image_io::{ValueRange, chw_to_rgb};
use difflab::device::DeviceChoice;
use difflab::diffusion::noise::gaussian;
use difflab::gpu::{
    TensorToTexture, burn_friendly_device_descriptor, share_with_burn, shared_device_features,
};
use difflab::tensor_util::{tensor4, to_vec};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::app::settle;

fn skip() -> bool {
    std::env::var_os("DIFFLAB_SKIP_WGPU").is_some()
}

/// A device like eframe's: the adapter's own features and limits, CPU adapters first.
fn shared_device() -> Option<(wgpu::Device, wgpu::Queue, burn::tensor::Device)> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let Some(adapter) = adapters
        .into_iter()
        .min_by_key(|a| u8::from(a.get_info().device_type != wgpu::DeviceType::Cpu))
    else {
        assert!(skip(), "no wgpu adapter (set DIFFLAB_SKIP_WGPU=1 to skip)");
        return None;
    };
    let (device, queue) = futures_lite::future::block_on(
        adapter.request_device(&burn_friendly_device_descriptor(&adapter)),
    )
    .expect("device with the adapter's limits");
    let burn_device = share_with_burn(&instance, &adapter, &device, &queue).expect("burn on it");
    Some((device, queue, burn_device))
}

fn cpu_pixels(values: &[f32], shape: [usize; 3]) -> Vec<u8> {
    let rgb = chw_to_rgb(values, shape, ValueRange::Unit).expect("rgb");
    rgb.pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
        .collect()
}

fn assert_close(gpu: &[u8], cpu: &[u8], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: size");
    let worst = gpu
        .iter()
        .zip(cpu)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(worst <= 1, "{what}: a pixel differs by {worst}/255");
}

/// The shared device must not ask for wgpu's experimental features: without
/// `ExperimentalFeatures::enabled()` that fails the device's creation, which on an NVIDIA H200
/// (Vulkan, driver 580: mesh shaders, cooperative matrices, ray tracing pipelines offered)
/// stopped the app before its first frame. lavapipe offers none, so only this catches it.
#[test]
fn the_shared_device_asks_for_every_feature_but_the_experimental_ones() {
    use wgpu::Features as F;
    let offered = F::SHADER_F16
        | F::SHADER_INT64
        | F::SUBGROUP
        | F::MAPPABLE_PRIMARY_BUFFERS
        | F::EXPERIMENTAL_MESH_SHADER
        | F::EXPERIMENTAL_COOPERATIVE_MATRIX
        | F::EXPERIMENTAL_RAY_TRACING_PIPELINES;
    assert_eq!(
        shared_device_features(offered),
        F::SHADER_F16 | F::SHADER_INT64 | F::SUBGROUP
    );
    let from_all = shared_device_features(F::all());
    assert!(!from_all.intersects(F::all_experimental_mask()));
    assert_eq!(
        from_all,
        F::all() - F::all_experimental_mask() - F::MAPPABLE_PRIMARY_BUFFERS
    );
}

/// When the GPU refuses the shared device, `app::run` opens the window again on egui's own
/// device and says why: the app then computes on flex even if the saved choice is wgpu, shows
/// the reason, and keeps that saved choice for the next start.
#[test]
fn a_refused_shared_device_leaves_a_working_app_on_the_cpu() {
    if skip() {
        return;
    }
    let mut h = Harness::builder()
        .with_size([1280.0, 860.0])
        .wgpu_setup(egui_kittest::wgpu::default_wgpu_setup())
        .build_eframe(|cc| {
            DiffLabApp::new(
                cc,
                AppOptions {
                    device: Some(DeviceChoice::Wgpu),
                    fresh: true,
                    state_file: None,
                    gpu_refused: Some("RequestDeviceError: feature refused".into()),
                    weights: None,
                    on_frames: false,
                    page_draws_in_software: None,
                },
            )
            .expect("app")
        });
    settle(&mut h, 30);
    let app = h.state();
    assert!(
        app.compute_label.starts_with("flex (CPU)"),
        "{}",
        app.compute_label
    );
    assert!(!app.gpu_display);
    assert_eq!(
        app.settings.device,
        DeviceChoice::Wgpu,
        "the saved choice is kept"
    );
    let banner = app.banner.clone().unwrap_or_default();
    assert!(
        banner.contains("refused") && banner.contains("feature refused"),
        "{banner}"
    );
    // And it works: the forward process shows x_t at a new t.
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(600.0);
    settle(&mut h, 30);
    assert_eq!(h.state().forward.shown_t, Some(600));
    assert!(h.get_all_by_label_contains("GPU refused").next().is_some());
}

#[test]
fn shader_texture_equals_cpu_pixels_for_any_layout() {
    let Some((device, queue, burn)) = shared_device() else {
        return;
    };
    let texturer = TensorToTexture::new(&device, &queue);

    // Contiguous colour batch; values beyond ±1 test the clamp.
    let shape = [2, 3, 17, 23];
    let n: usize = shape.iter().product();
    let values: Vec<f32> = gaussian(3, 0, n).iter().map(|v| v * 0.8).collect();
    let x = tensor4(values.clone(), shape, &burn);
    for item in 0..2 {
        let tex = texturer.render(&x, item, -1.0, 1.0).expect("render");
        assert_eq!((tex.width(), tex.height()), (23, 17));
        let per = 3 * 17 * 23;
        let want = cpu_pixels(&values[item * per..(item + 1) * per], [3, 17, 23]);
        assert_close(
            &texturer.read_texture(&tex).expect("read"),
            &want,
            "contiguous",
        );
    }

    // Channels-last memory, seen as [B, C, H, W] through a permute (non-contiguous strides).
    let hwc: Vec<f32> = gaussian(4, 0, 19 * 31 * 3);
    let nhwc: Tensor<4> = tensor4(hwc.clone(), [1, 19, 31, 3], &burn);
    let nchw = nhwc.permute([0, 3, 1, 2]) * 0.5;
    let expected = to_vec(nchw.clone()).expect("values");
    let tex = texturer.render(&nchw, 0, -1.0, 1.0).expect("render");
    assert_close(
        &texturer.read_texture(&tex).expect("read"),
        &cpu_pixels(&expected, [3, 19, 31]),
        "permuted",
    );

    // Greyscale (MNIST-like), one channel copied to R, G and B; the result of real ops.
    let g: Vec<f32> = gaussian(5, 0, 28 * 28);
    let grey = (tensor4(g, [1, 1, 28, 28], &burn).tanh() * 0.9).add_scalar(0.05);
    let expected = to_vec(grey.clone()).expect("values");
    let tex = texturer.render(&grey, 0, -1.0, 1.0).expect("render");
    assert_close(
        &texturer.read_texture(&tex).expect("read"),
        &cpu_pixels(&expected, [1, 28, 28]),
        "grey",
    );

    assert!(
        texturer.render(&grey, 1, -1.0, 1.0).is_err(),
        "item out of range is an error"
    );
}

/// The app with fresh settings, rendered with a CPU-preferring wgpu adapter (lavapipe in CI),
/// at the size the snapshots were made at.
fn wgpu_harness(device: DeviceChoice) -> Harness<'static, DiffLabApp> {
    Harness::builder()
        .with_size([1280.0, 860.0])
        .wgpu_setup(wgpu_setup(true))
        .build_eframe(move |cc| {
            DiffLabApp::new(
                cc,
                AppOptions {
                    device: Some(device),
                    fresh: true,
                    state_file: None,
                    gpu_refused: None,
                    weights: None,
                    on_frames: false,
                    page_draws_in_software: None,
                },
            )
            .expect("app")
        })
}

#[test]
fn the_app_computes_on_the_shared_device_and_shows_gpu_textures() {
    if skip() {
        return;
    }
    let mut h = wgpu_harness(DeviceChoice::Wgpu);
    settle(&mut h, 30);
    assert!(h.state().gpu_display, "{}", h.state().compute_label);
    assert!(h.state().compute_label.contains("shared with egui"));
    // lavapipe draws the window on the CPU, so a run repaints it twice a second, not ten times.
    assert_eq!(h.state().repaint_pace(), RepaintPace::Software);
    // And hovers cost fewer frames there: no animations, no tooltip delay.
    let style = h.ctx.global_style();
    assert_eq!(
        (style.animation_time, style.interaction.tooltip_delay),
        (0.0, 0.0)
    );
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(400.0);
    settle(&mut h, 30);
    let app = h.state();
    assert!(app.banner.is_none(), "{:?}", app.banner);
    assert_eq!(app.forward.shown_t, Some(400));
    assert!(app.forward.one_shot.is_gpu() && app.forward.chain.is_gpu() && app.forward.x0.is_gpu());
    assert_eq!(app.forward.one_shot.size, [256, 170]);
    let total: f32 = app.forward.histogram.iter().sum();
    assert!(
        total > 0.99 * (3 * 256 * 170) as f32,
        "histogram on the device: {total}"
    );
    // The rendered window shows the textures: the x_0 area is not one flat colour.
    let shot = h.render().expect("render");
    let rect = h.get_by_label("x_0").rect();
    let y = (rect.bottom() + 60.0) as u32;
    let row: Vec<[u8; 4]> = (rect.left() as u32..rect.left() as u32 + 200)
        .map(|x| shot.get_pixel(x, y).0)
        .collect();
    let distinct: std::collections::HashSet<_> = row.iter().collect();
    assert!(
        distinct.len() > 20,
        "the photo is drawn ({} colours in a row)",
        distinct.len()
    );
}

#[test]
fn snapshots_of_the_forward_and_schedule_panels() {
    if skip() {
        return;
    }
    // Rendered with the same software adapter as CI; compute on flex (auto on a CPU adapter).
    let mut h = wgpu_harness(DeviceChoice::Auto);
    settle(&mut h, 30);
    h.snapshot("forward_panel");
    h.get_by_label("Schedule").click();
    settle(&mut h, 30);
    h.snapshot("schedule_panel");

    // Sampling: DDIM 20 steps, η = 0.5, scrubbed back to step 8 (the terms row shows).
    h.get_by_label("Sampling").click();
    h.step();
    h.get_by_role_and_label(Role::Slider, "Steps")
        .set_value_accesskit(20.0);
    h.get_by_role_and_label(Role::Slider, "η")
        .set_value_accesskit(0.5);
    h.step();
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    h.get_by_role_and_label(Role::Slider, "Step")
        .set_value_accesskit(8.0);
    settle(&mut h, 10);
    h.snapshot("sampling_panel");

    // Guided: digit 3 at w = 4, DDIM 20 steps, scrubbed to step 8 (ε_uncond, ε_cond, ε_guided).
    {
        let s = &mut h.state_mut().settings;
        s.sampling.guidance.label = difflab::app::LabelPick::Digit(3);
        s.sampling.guidance.scale = 4.0;
    }
    h.step();
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    h.get_by_role_and_label(Role::Slider, "Step")
        .set_value_accesskit(8.0);
    settle(&mut h, 10);
    h.snapshot("sampling_guided_panel");
    h.state_mut().settings.sampling.guidance.label = difflab::app::LabelPick::Any;
    h.step();

    h.get_by_label("Compare").click();
    h.step();
    h.get_by_label("Run A and B").click();
    settle(&mut h, 60);
    h.get_by_role_and_label(Role::Slider, "Progress")
        .set_value_accesskit(0.6);
    settle(&mut h, 10);
    h.snapshot("compare_panel");

    h.get_by_label("Interpolate").click();
    h.step();
    h.get_by_label("Decode").click();
    settle(&mut h, 60);
    h.snapshot("interpolate_panel");

    // The playground: the swiss roll sampled by the exact denoiser (deterministic, unlike a
    // model trained for some wall time), DDPM and DDIM side by side with particle paths.
    h.get_by_label("2-D playground").click();
    h.step();
    h.state_mut().settings.toy.model = ToyModel::Exact;
    h.get_by_label("Sample DDPM and DDIM").click();
    settle(&mut h, 60);
    h.get_by_role_and_label(Role::Slider, "Frame")
        .set_value_accesskit(35.0);
    settle(&mut h, 10);
    h.snapshot("playground_panel");

    // The lessons: lesson 9 (DDIM: x̂_0, the three terms), its answer revealed.
    h.get_by_label("Lessons").click();
    h.state_mut().settings.lessons.current = 8;
    h.state_mut().settings.lessons.language = Some(difflab::app::Lang::En);
    h.step();
    h.get_by_label("Reveal the answer").click();
    settle(&mut h, 10);
    h.snapshot("lessons_panel");

    // The same lesson in Simplified Chinese (the bundled CJK font).
    h.state_mut().settings.lessons.language = Some(difflab::app::Lang::Zh);
    settle(&mut h, 10);
    h.snapshot("lessons_panel_zh");
    h.state_mut().settings.lessons.language = Some(difflab::app::Lang::En);
    settle(&mut h, 10);

    // Presenter mode (F5): the same lesson, everything 1.75× larger.
    h.key_press(egui::Key::F5);
    settle(&mut h, 10);
    h.snapshot("lessons_presenter");
}
