//! The window: where the app computes (a GPU shared with eframe, or flex), eframe's wgpu setup
//! and options, and opening it.

use std::path::PathBuf;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

#[cfg(not(target_arch = "wasm32"))]
use eframe::egui_wgpu;

use super::jobs::thread::RepaintPace;
use super::render::{self, RenderState};
use super::{APP_ID, Compute, Display, TITLE, settings};
use crate::device::{BackendKind, ComputeDevice, DeviceChoice, select_device};

/// How the app was started.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Overrides the saved device choice (`--device`).
    pub device: Option<DeviceChoice>,
    /// Ignore saved settings.
    pub fresh: bool,
    /// Where the persisted state lives (`None`: where eframe keeps it for this app). Tests
    /// point it at a file of their own.
    pub state_file: Option<PathBuf>,
    /// Set when the GPU refused the device difflab shares with burn and the window was opened
    /// on egui's own device instead (the reason): the app then computes on flex and says so.
    /// The saved device choice is left as it was, so a fixed driver gets the GPU path back.
    pub gpu_refused: Option<String>,
    /// A U-Net weights file to sample with (`difflab gui --weights`), instead of the one the
    /// saved settings name.
    pub weights: Option<PathBuf>,
    /// Run the jobs on the frame loop, a budget of steps per frame, as the browser build does
    /// (always there); tests drive the web's path natively with it.
    pub on_frames: bool,
    /// The page: whether the browser draws its WebGL in software (the renderer's name says so:
    /// SwiftShader, llvmpipe), which then sets the pace of a run's repaints as lavapipe does on
    /// the desktop. `None`: eframe's wgpu adapter says.
    pub page_draws_in_software: Option<bool>,
}

impl AppOptions {
    /// The state file: the one given, or eframe's for this app id.
    pub fn state_file(&self) -> Option<PathBuf> {
        self.state_file
            .clone()
            .or_else(|| settings::default_state_file(APP_ID))
    }

    /// Where difflab kept its state file before [`APP_ID`] (its folder was named after the
    /// title); `None` when a state file was given.
    pub fn legacy_state_file(&self) -> Option<PathBuf> {
        if self.state_file.is_some() || cfg!(windows) {
            return None;
        }
        settings::default_state_file(TITLE)
    }
}

/// Chooses where to compute, given eframe's wgpu state (if any).
pub(super) fn choose_compute(
    choice: DeviceChoice,
    render: Option<&RenderState>,
) -> (Compute, Option<String>) {
    let flex = |note: Option<String>| (flex_compute(), note);
    if choice == DeviceChoice::Cpu {
        return flex(None);
    }
    // The page: WebGPU where the browser offers it (brought up before the app started, see
    // `device::init_page_gpu`), its pictures read back to the CPU; flex otherwise.
    if cfg!(target_arch = "wasm32") {
        return match select_device(choice) {
            Ok(dev) if dev.backend == BackendKind::Wgpu => (
                Compute {
                    device: dev.device,
                    display: Display::Cpu,
                    label: format!("{} · display: egui ColorImage", dev.label),
                },
                None,
            ),
            Ok(_) => flex(None),
            Err(e) => flex(Some(e.to_string())),
        };
    }
    let Some(rs) = render else {
        // No wgpu renderer: a separate wgpu device would need a CPU copy to display anyway.
        return match (choice, select_device(choice)) {
            (DeviceChoice::Wgpu, Ok(dev)) => (
                Compute {
                    device: dev.device,
                    display: Display::Cpu,
                    label: format!("{} · display: egui ColorImage", dev.label),
                },
                None,
            ),
            (_, Err(e)) => flex(Some(e.to_string())),
            _ => flex(None),
        };
    };
    if render::draws_through_opengl(rs) {
        // burn's wgpu backend hung on OpenGL (docs/guide/computing.md): the window still draws.
        let note = (choice == DeviceChoice::Wgpu).then(|| {
            "the window draws through OpenGL, which burn's wgpu backend hangs on: computing on \
             flex (install a Vulkan driver to compute on the GPU)"
                .to_string()
        });
        return flex(note);
    }
    if choice == DeviceChoice::Auto && !render::draws_on_gpu(rs) {
        return flex(None);
    }
    match render::share(rs) {
        Ok((device, texturer)) => (
            Compute {
                device,
                display: Display::Gpu(texturer),
                label: format!(
                    "wgpu: {}, shared with egui · display: GPU texture",
                    render::adapter_label(rs)
                ),
            },
            None,
        ),
        Err(e) => flex(Some(format!("{e}; computing on flex instead"))),
    }
}

/// Where the forward panel and the playground compute: as `compute`, except on a GPU in the
/// page, where they stay on flex. Their work is small (one image, a 2-D toy) and they read it
/// back at every slider move and training step, synchronously, which a GPU in the browser
/// cannot do (its reads are asynchronous only).
pub(super) fn for_small_jobs(compute: Compute) -> Compute {
    if crate::tensor_util::reads_synchronously(&compute.device) {
        compute
    } else {
        flex_compute()
    }
}

/// Computing on flex, pictures as egui `ColorImage`s: the CPU path.
pub(super) fn flex_compute() -> Compute {
    Compute {
        device: ComputeDevice::flex().device,
        display: Display::Cpu,
        label: "flex (CPU) · display: egui ColorImage".into(),
    }
}

/// How often a run may repaint the window: a software renderer (a CPU-type adapter, or none;
/// in the page, a browser drawing WebGL in software) draws on the CPU that the run needs.
pub(super) fn repaint_pace(
    render: Option<&RenderState>,
    page_draws_in_software: Option<bool>,
) -> RepaintPace {
    if let Some(software) = page_draws_in_software {
        return if software {
            RepaintPace::Software
        } else {
            RepaintPace::Hardware
        };
    }
    if render.is_some_and(render::draws_on_gpu) {
        RepaintPace::Hardware
    } else {
        RepaintPace::Software
    }
}

/// Whether a WebGL renderer of this name draws on the CPU: Chrome's fallback (SwiftShader),
/// Mesa's (llvmpipe, softpipe) and Windows' (Microsoft Basic Render Driver). A name the browser
/// keeps to itself counts as a GPU, as most are.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // the page asks; native tests too
pub(super) fn draws_in_software(renderer: &str) -> bool {
    let r = renderer.to_ascii_lowercase();
    [
        "swiftshader",
        "llvmpipe",
        "softpipe",
        "basic render",
        "software",
    ]
    .iter()
    .any(|s| r.contains(s))
}

/// On a software renderer every frame of this window costs the CPU about a quarter of a second
/// (lavapipe on a 2-core VM), and egui spends frames on hover effects: its animations
/// (`animation_time`, 1/12 s) repaint until they end, and a tooltip waits `tooltip_delay`
/// (0.5 s) with a frame of its own. There both go: a mouse move over the controls then costs
/// 3.3 frames instead of 5.5 and 1.07 s of CPU instead of 1.76 (`Context::repaint_causes`, Xvfb,
/// eight moves). A tooltip still waits for the pointer to stop, and at four frames a second it
/// appears about as late as the delay would have shown it.
pub(super) fn pace_style(ctx: &egui::Context, pace: RepaintPace) {
    if pace == RepaintPace::Software {
        ctx.all_styles_mut(|style| {
            style.animation_time = 0.0;
            style.interaction.tooltip_delay = 0.0;
        });
    }
}

/// How eframe (or a test harness) creates its wgpu device: with the adapter's own features
/// and limits, so burn can share it. `prefer_cpu` picks a CPU-type adapter (lavapipe) first, as
/// tests do so that they render the same everywhere.
#[cfg(not(target_arch = "wasm32"))]
pub fn wgpu_setup(prefer_cpu: bool) -> egui_wgpu::WgpuSetup {
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = Arc::new(crate::gpu::burn_friendly_device_descriptor);
    if prefer_cpu {
        setup.native_adapter_selector = Some(Arc::new(|adapters, _surface| {
            adapters
                .iter()
                .min_by_key(|a| {
                    let info = a.get_info();
                    let kind = match info.device_type {
                        egui_wgpu::wgpu::DeviceType::Cpu => 0,
                        _ => 1,
                    };
                    let api = match info.backend {
                        egui_wgpu::wgpu::Backend::Vulkan => 0,
                        _ => 1,
                    };
                    (kind, api)
                })
                .cloned()
                .ok_or_else(|| "no wgpu adapter found".to_owned())
        }));
    }
    egui_wgpu::WgpuSetup::CreateNew(setup)
}

/// eframe's options: the wgpu renderer, with a device burn can share.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_options() -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(TITLE)
            .with_inner_size([1280.0, 860.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: wgpu_setup(false),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Opens the window.
#[cfg(not(target_arch = "wasm32"))]
pub fn run(options: AppOptions) -> crate::Result<()> {
    // Without a display winit's own error is a paragraph with a source path in it.
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty())
        && std::env::var_os("WAYLAND_DISPLAY").is_none_or(|d| d.is_empty())
    {
        return Err(crate::DiffError::Backend(
            "cannot open the window: there is no display (DISPLAY and WAYLAND_DISPLAY are \
             unset); the commands work without one (difflab --help)"
                .into(),
        ));
    }
    let result = match open_window(native_options(), options.clone()) {
        // The GPU refused the device burn and egui share (a driver that rejects a feature or a
        // limit it advertised): open the window once more on egui's own, plainer device, and
        // compute on the CPU, rather than not start at all.
        Err(eframe::Error::Wgpu(e)) => {
            let why = e.to_string();
            eprintln!(
                "difflab: the GPU refused the shared device ({why}); opening the window on \
                 egui's own device, computing on the CPU"
            );
            let mut native = native_options();
            native.wgpu_options = egui_wgpu::WgpuConfiguration::default();
            let refused = AppOptions {
                gpu_refused: Some(why),
                ..options
            };
            match open_window(native, refused.clone()) {
                // That adapter gives no device at all (a Direct3D 12 adapter that a virtual
                // machine or wine lists but cannot open; a broken driver): once more on Vulkan
                // and OpenGL only, unless the user chose the backends (WGPU_BACKEND).
                Err(eframe::Error::Wgpu(e)) if std::env::var_os("WGPU_BACKEND").is_none() => {
                    eprintln!(
                        "difflab: that failed too ({e}); trying the Vulkan and OpenGL drivers"
                    );
                    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
                    setup.instance_descriptor.backends =
                        egui_wgpu::wgpu::Backends::VULKAN | egui_wgpu::wgpu::Backends::GL;
                    let mut native = native_options();
                    native.wgpu_options = egui_wgpu::WgpuConfiguration {
                        wgpu_setup: egui_wgpu::WgpuSetup::CreateNew(setup),
                        ..Default::default()
                    };
                    open_window(native, refused)
                }
                other => other,
            }
        }
        other => other,
    };
    result.map_err(|e| crate::DiffError::Backend(format!("cannot open the window: {e}")))
}

#[cfg(not(target_arch = "wasm32"))]
fn open_window(mut native: eframe::NativeOptions, options: AppOptions) -> eframe::Result {
    native.persistence_path = options.state_file();
    eframe::run_native(
        TITLE,
        native,
        Box::new(move |cc| Ok(Box::new(super::DiffLabApp::new(cc, options)?))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings folder's name is one every system allows (Windows refuses `:`, `\\`, `/`,
    /// `*`, `?`, `"`, `<`, `>`, `|`), and the old folder is only read, on Linux and macOS.
    #[test]
    fn the_settings_folder_name_is_valid_everywhere() {
        assert!(!APP_ID.contains([':', '\\', '/', '*', '?', '"', '<', '>', '|', ' ']));
        let options = AppOptions::default();
        let file = options
            .state_file()
            .expect("a settings folder on this system");
        assert!(
            file.ends_with(format!("{APP_ID}/app.ron")),
            "{}",
            file.display()
        );
        if cfg!(windows) {
            assert_eq!(options.legacy_state_file(), None);
        } else {
            assert!(options.legacy_state_file().is_some_and(|f| f != file));
        }
        let given = AppOptions {
            state_file: Some("/tmp/x.ron".into()),
            ..AppOptions::default()
        };
        assert_eq!(given.legacy_state_file(), None);
    }

    #[test]
    fn a_software_renderer_drops_hover_animations_and_the_tooltip_delay() {
        let ctx = egui::Context::default();
        let before = (
            ctx.global_style().animation_time,
            ctx.global_style().interaction.tooltip_delay,
        );
        pace_style(&ctx, RepaintPace::Hardware);
        assert_eq!(
            (
                ctx.global_style().animation_time,
                ctx.global_style().interaction.tooltip_delay
            ),
            before
        );
        assert!(before.0 > 0.0 && before.1 > 0.0);
        pace_style(&ctx, RepaintPace::Software);
        for theme in [egui::Theme::Dark, egui::Theme::Light] {
            ctx.set_theme(theme);
            let style = ctx.global_style();
            assert_eq!(style.animation_time, 0.0, "{theme:?}");
            assert_eq!(style.interaction.tooltip_delay, 0.0, "{theme:?}");
        }
    }

    #[test]
    fn a_page_drawn_in_software_repaints_a_run_at_the_software_pace() {
        // Headless Chromium's WebGL (this machine's browser test), Firefox on Mesa's fallback,
        // Windows without a driver: software. A GPU's name, or one the browser keeps: hardware.
        for name in [
            "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            "ANGLE (Microsoft, Microsoft Basic Render Driver Direct3D11 vs_5_0 ps_5_0)",
        ] {
            assert!(draws_in_software(name), "{name}");
            assert_eq!(
                repaint_pace(None, Some(draws_in_software(name))),
                RepaintPace::Software
            );
        }
        for name in [
            "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)",
            "Apple M1",
            "WebKit WebGL",
            "",
        ] {
            assert!(!draws_in_software(name), "{name}");
            assert_eq!(
                repaint_pace(None, Some(draws_in_software(name))),
                RepaintPace::Hardware
            );
        }
        // The desktop: no page, no wgpu renderer (flex's ColorImages drawn by egui): software.
        assert_eq!(repaint_pace(None, None), RepaintPace::Software);
    }
}
