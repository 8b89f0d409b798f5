//! The browser's entry (wasm32): eframe's web runner on the page's canvas, the jobs on the
//! frame loop, settings in the browser's storage. Failures are written into the page (its
//! status line), never only to the console.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{AppOptions, DiffLabApp};

/// The canvas the app draws on and the line under it that says what is happening
/// (`web/index.html`).
const CANVAS_ID: &str = "difflab_canvas";
const STATUS_ID: &str = "difflab_status";

/// Writes `text` into the page's status line (shown when `text` is not empty).
pub fn page_status(text: &str) {
    let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(STATUS_ID))
    else {
        return;
    };
    el.set_text_content(Some(text));
    let _ = el.set_attribute("style", if text.is_empty() { "display:none" } else { "" });
}

/// Starts the app on the page (called by the page's script through the binary's `main`).
pub fn start() {
    // In a model worker (src/app/jobs/web_models.rs) the module runs pieces of the model, not the
    // app: there is no page.
    if web_sys::window().is_none() {
        return;
    }
    wasm_bindgen_futures::spawn_local(async {
        if let Err(e) = run().await {
            page_status(&format!("difflab could not start: {e}"));
        }
    });
}

async fn run() -> Result<(), String> {
    let canvas = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(CANVAS_ID))
        .ok_or("the page has no canvas for difflab")?
        .dyn_into::<web_sys::HtmlCanvasElement>()
        .map_err(|_| "the difflab element is not a canvas")?;
    // `?device=wgpu` (or `cpu`, `auto`) in the page's address: the desktop's `--device`.
    let (device, bad_device) = match url_device() {
        Ok(d) => (d, None),
        Err(v) => (
            None,
            Some(format!(
                "device={v} is not auto, wgpu or cpu: computing as auto"
            )),
        ),
    };
    let workers = start_kernel_workers();
    // WebGPU first (it comes up only asynchronously in a browser): the app then finds it, or
    // computes on the CPU and says why in its status line.
    page_status("Asking the browser for WebGPU…");
    let gpu = crate::device::init_page_gpu().await;
    WEBGPU.with(|w| *w.borrow_mut() = gpu.unwrap_or_else(|why| format!("none: {why}")));
    // The canvas's WebGL context: the renderer's name says whether the browser draws in
    // software, which sets how often a run repaints.
    let webgl = webgl2_without_multisampling(&canvas);
    let software = super::window::draws_in_software(&webgl);
    WEBGL.with(|w| *w.borrow_mut() = webgl);
    let options = AppOptions {
        on_frames: true,
        device,
        page_draws_in_software: Some(software),
        ..AppOptions::default()
    };
    // Drawn in software, every pixel's dithering (two `fract`s a fragment) is CPU time the
    // frame waits for; egui's flat colours and the 8-bit digits do not band without it.
    let web_options = eframe::WebOptions {
        dithering: !software,
        ..eframe::WebOptions::default()
    };
    let runner = eframe::WebRunner::new();
    runner
        .start(
            canvas,
            web_options,
            Box::new(move |cc| Ok(Box::new(DiffLabApp::new(cc, options)?))),
        )
        .await
        .map_err(|e| e.as_string().unwrap_or_else(|| format!("{e:?}")))?;
    page_status(bad_device.as_deref().unwrap_or(""));
    wasm_bindgen_futures::spawn_local(drive_jobs(runner.clone()));
    RUNNER.with(|r| *r.borrow_mut() = Some(runner.clone()));
    // The model's warm-up once the kernel workers are up (they answer within a few hundred
    // ms), so that it runs a run's pieces on them and warms them too.
    if let Some(ready) = workers {
        let _ = wasm_bindgen_futures::JsFuture::from(ready).await;
    }
    // Then the model workers, which warm up by themselves; the page's warm-up after them runs
    // the pieces a run with them runs.
    // `?models=0` leaves them out (the kernel workers alone, as before them: for comparing).
    if let Some(cores) = other_cores().filter(|_| url_param("models").as_deref() != Some("0")) {
        let _ = wasm_bindgen_futures::JsFuture::from(super::jobs::web_models::start(cores)).await;
    }
    if let Some(mut app) = runner.app_mut::<DiffLabApp>() {
        app.warm_up();
    }
    // Kept for the page's lifetime (it owns the event handlers).
    std::mem::forget(runner);
    Ok(())
}

#[wasm_bindgen(module = "/web/pool.js")]
extern "C" {
    fn pool_spawn(memory: &JsValue, count: u32, url: &str) -> js_sys::Promise;
    fn pool_ready() -> u32;
    #[allow(clippy::too_many_arguments)]
    fn pool_start(
        i: u32,
        xc: u32,
        xc_len: u32,
        images: u32,
        offs: u32,
        k: u32,
        w: u32,
        w_len: u32,
        rows: u32,
        cols: u32,
        task_rows: u32,
    );
    #[allow(clippy::too_many_arguments)]
    fn pool_start_norm(
        i: u32,
        x: u32,
        images: u32,
        channels: u32,
        spatial: u32,
        groups: u32,
        gamma: u32,
        beta: u32,
        epsilon: f64,
        silu: bool,
    );
    fn pool_claim(i: u32) -> i32;
    fn pool_finish(i: u32, y: u32);
}

/// Most Web Workers the CPU kernels take (the desktop's rayon takes every core; a page shares
/// its machine with the browser, which draws on another).
const MAX_KERNEL_WORKERS: u32 = 7;

/// The page's other cores for the CPU kernels (difflab-kernels' `helpers`, web/pool.js): one
/// Web Worker per core but this one, where the page is cross-origin isolated (shared memory)
/// and its address does not say `threads=1`. The promise is kept when every worker has answered
/// (or failed, or after 3 s).
fn start_kernel_workers() -> Option<js_sys::Promise> {
    let cores = other_cores()?;
    let ready = pool_spawn(
        &wasm_bindgen::memory(),
        cores.min(MAX_KERNEL_WORKERS),
        "conv_worker.wasm",
    );
    difflab_kernels::helpers::set_helpers(Some(std::rc::Rc::new(KernelWorkers)));
    Some(ready)
}

/// The page's cores besides its own thread, where it may have workers: a cross-origin isolated
/// page (shared memory) whose address does not say `threads=1`, on more than one core.
fn other_cores() -> Option<u32> {
    let global = js_sys::global();
    let get = |o: &JsValue, key: &str| js_sys::Reflect::get(o, &key.into()).ok();
    let isolated = get(&global, "crossOriginIsolated").and_then(|v| v.as_bool()) == Some(true);
    let cores = get(&global, "navigator")
        .and_then(|n| get(&n, "hardwareConcurrency"))
        .and_then(|v| v.as_f64())
        .map_or(1, |c| c as u32);
    let one_thread = url_param("threads").as_deref() == Some("1");
    (isolated && !one_thread && cores >= 2).then(|| cores - 1)
}

/// web/pool.js's workers, as difflab-kernels' helpers. The page's memory is wasm32's: its
/// addresses and lengths fit a u32.
struct KernelWorkers;

impl difflab_kernels::helpers::Helpers for KernelWorkers {
    fn count(&self) -> usize {
        pool_ready() as usize
    }

    fn start(&self, i: usize, s: &difflab_kernels::helpers::Share<'_>) {
        let at = |p: *const f32| p as u32;
        pool_start(
            i as u32,
            at(s.xc.as_ptr()),
            s.xc_len as u32,
            s.images as u32,
            s.offs.as_ptr() as u32,
            s.offs.len() as u32,
            at(s.w.as_ptr()),
            s.w.len() as u32,
            s.rows as u32,
            s.cols as u32,
            difflab_kernels::helpers::TASK_ROWS as u32,
        );
    }

    fn start_norm(&self, i: usize, s: &difflab_kernels::helpers::NormShare<'_>) {
        pool_start_norm(
            i as u32,
            s.x.as_ptr() as u32,
            s.images as u32,
            s.gamma.len() as u32,
            s.spatial as u32,
            s.groups as u32,
            s.gamma.as_ptr() as u32,
            s.beta.as_ptr() as u32,
            s.epsilon,
            s.silu,
        );
    }

    fn claim(&self, i: usize) -> Option<usize> {
        usize::try_from(pool_claim(i as u32)).ok()
    }

    fn finish(&self, i: usize, y: &mut [f32]) {
        pool_finish(i as u32, y.as_mut_ptr() as u32);
    }
}

/// The value of parameter `key` in the page's address, if it is there.
fn url_param(key: &str) -> Option<String> {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}

/// The `device` parameter of the page's address, if any (`Err`: a value that names none).
fn url_device() -> Result<Option<crate::device::DeviceChoice>, String> {
    use crate::device::DeviceChoice;
    let Some(value) = url_param("device") else {
        return Ok(None);
    };
    match value.as_str() {
        "auto" => Ok(Some(DeviceChoice::Auto)),
        "wgpu" | "webgpu" => Ok(Some(DeviceChoice::Wgpu)),
        "cpu" => Ok(Some(DeviceChoice::Cpu)),
        other => Err(other.to_string()),
    }
}

/// Creates the canvas's WebGL 2 context without multisampling and without a depth buffer, before
/// eframe asks for it (a canvas has one context: eframe's `getContext("webgl2")` then gets this
/// one). egui smooths its own edges and draws no 3-D, and a browser drawing in software (no GPU
/// for the page) spent most of each frame resolving the 4× multisampled canvas it would
/// otherwise get by default. Returns the renderer's name (`WEBGL_debug_renderer_info`), or ""
/// where the browser does not say.
fn webgl2_without_multisampling(canvas: &web_sys::HtmlCanvasElement) -> String {
    /// `UNMASKED_RENDERER_WEBGL`, from the `WEBGL_debug_renderer_info` extension.
    const UNMASKED_RENDERER: u32 = 0x9246;
    let options = js_sys::Object::new();
    for (key, value) in [("antialias", false), ("depth", false)] {
        let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
    }
    // Where it fails, eframe creates its own context (and says so if that fails too).
    let Some(gl) = canvas
        .get_context_with_context_options("webgl2", &options)
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::WebGl2RenderingContext>().ok())
    else {
        return String::new();
    };
    let info = gl.get_extension("WEBGL_debug_renderer_info").ok().flatten();
    let name = |p: u32| gl.get_parameter(p).ok().and_then(|v| v.as_string());
    info.and_then(|_| name(UNMASKED_RENDERER))
        .or_else(|| name(web_sys::WebGl2RenderingContext::RENDERER))
        .unwrap_or_default()
}

/// The jobs in the page, between its frames: a slice of steps ([`super::FRAME_BUDGET`], at
/// least one step) as a task of its own, then back to the browser, which draws a frame when
/// one is due and answers input before the next slice. A frame that draws then does not also
/// compute; the app repaints when a job's events bring something new to show (at most ten
/// times a second while a run streams: `thread::WorkerThread::on_frames`). Idle, it looks for
/// work every 16 ms.
async fn drive_jobs(runner: eframe::WebRunner) {
    // Not before the first frame is on the page (a warm-up on WebGPU compiles its shaders).
    let _ = wasm_bindgen_futures::JsFuture::from(next_frame()).await;
    let mut drawn = frames_drawn();
    loop {
        // After a frame that drew, the next slice waits for the frame after it: in a browser
        // drawing in software a drawn frame takes two or three 60 Hz intervals (the canvas read
        // back for compositing), and a slice straight after it made it four.
        if frames_drawn() != drawn {
            let _ = wasm_bindgen_futures::JsFuture::from(next_frame()).await;
            let _ = wasm_bindgen_futures::JsFuture::from(next_task()).await;
            drawn = frames_drawn();
        }
        // (A frame drew, and the browser has shown it: the model workers go on.)
        super::jobs::web_models::drawing(false);
        let (more, waiting) = runner
            .app_mut::<DiffLabApp>()
            .map_or((false, false), |mut app| {
                (app.pump_jobs(), app.sampler.waits_on_browser())
            });
        // A job waiting for a GPU read looks again every 2 ms (the read comes back in a task of
        // the browser's own), or for a model worker's piece when it comes back; one with steps
        // to take goes on at the next task.
        let wait = match (more, waiting) {
            (true, false) => next_task(),
            (true, true) => js_sys::Promise::race(&js_sys::Array::of2(
                &after_ms(2),
                &super::jobs::web_models::next_piece(),
            )),
            (false, _) => after_ms(16),
        };
        let _ = wasm_bindgen_futures::JsFuture::from(wait).await;
    }
}

/// How many frames egui has drawn in the page.
fn frames_drawn() -> u64 {
    CTX.with(|c| {
        c.borrow()
            .as_ref()
            .map_or(0, egui::Context::cumulative_frame_nr)
    })
}

/// A promise kept by the next task: a message posted to itself, which, unlike `setTimeout(0)`,
/// is not held back 4 ms once nested.
fn next_task() -> js_sys::Promise {
    js_sys::Promise::new(
        &mut |resolve, _reject| match web_sys::MessageChannel::new() {
            Ok(channel) => {
                channel.port1().set_onmessage(Some(&resolve));
                let _ = channel.port2().post_message(&JsValue::NULL);
            }
            Err(_) => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        },
    )
}

/// A promise kept at the next animation frame.
fn next_frame() -> js_sys::Promise {
    js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.request_animation_frame(&resolve);
        }
    })
}

/// A promise kept after `ms` milliseconds.
fn after_ms(ms: i32) -> js_sys::Promise {
    js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    })
}

/// A dropped file: its name, and its bytes or why they could not be read.
type DroppedFile = (String, Result<Vec<u8>, String>);

thread_local! {
    /// Commands from the page's script, applied at the start of the next frame.
    static INBOX: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The app's runner, for a script's report between frames.
    static RUNNER: std::cell::RefCell<Option<eframe::WebRunner>> =
        const { std::cell::RefCell::new(None) };
    /// Dropped files read so far (name, bytes or why not), opened at the next frame.
    static DROPPED: std::cell::RefCell<Vec<DroppedFile>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// Why egui drew the page's frames so far: each repaint cause and how often it came.
    /// Kept by the call's place, so a frame only counts (the text is made for a report).
    static CAUSES: std::cell::RefCell<std::collections::BTreeMap<(&'static str, u32), usize>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
    /// What the browser's WebGPU gave: the device's label, or "none: " and why.
    static WEBGPU: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// The browser's WebGL renderer, as it names it.
    static WEBGL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// The app's context, to wake it for a script.
    static CTX: std::cell::RefCell<Option<egui::Context>> = const { std::cell::RefCell::new(None) };
}

/// Asks for one frame (egui draws two for a request without a delay: a script polling the
/// report would otherwise keep the page drawing).
fn wake() {
    CTX.with(|c| {
        if let Some(ctx) = c.borrow().as_ref() {
            ctx.request_repaint_after(std::time::Duration::from_millis(1));
        }
    });
}

/// Queues a scripted command (JSON, see `src/app/remote.rs`) for the next frame.
#[wasm_bindgen]
pub fn difflab_command(json: String) {
    INBOX.with(|i| i.borrow_mut().push(json));
    wake();
}

/// The app's state as JSON, read between frames ("" before the app has started). A script
/// polling it draws no frames of its own: they would add to a run's (ten a second, each about
/// 30 ms where the browser draws in software). What the jobs' events bring shows in it after
/// the frame that takes them in, as on the screen.
#[wasm_bindgen]
pub fn difflab_report() -> String {
    RUNNER.with(|r| {
        let runner = r.borrow();
        let Some(app) = runner
            .as_ref()
            .and_then(eframe::WebRunner::app_mut::<DiffLabApp>)
        else {
            return String::new();
        };
        let mut report = app.report();
        report.repaint_causes = CAUSES.with(|c| {
            let mut v: Vec<_> = c
                .borrow()
                .iter()
                .map(|((file, line), n)| format!("{n}× {file}:{line}"))
                .collect();
            v.sort();
            v
        });
        report.webgpu = WEBGPU.with(|w| w.borrow().clone());
        report.webgl = WEBGL.with(|w| w.borrow().clone());
        report.frames = frames_drawn();
        report.model_workers = super::jobs::web_models::ready();
        serde_json::to_string(&report).unwrap_or_default()
    })
}

/// Reads a dropped file's bytes (the browser reads them asynchronously); the next frame opens
/// it.
pub(super) fn read_dropped(file: egui::DroppedFileHandle) {
    wasm_bindgen_futures::spawn_local(async move {
        let name = file.path().file_name().map_or_else(
            || "dropped file".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let bytes = file.bytes_async().await;
        DROPPED.with(|d| d.borrow_mut().push((name, bytes)));
        wake();
    });
}

/// The page's part of each frame: dropped files and scripted commands in.
pub(super) fn frame(app: &mut DiffLabApp, ctx: &egui::Context) {
    // The model workers start no piece until the next slice of work: the browser drawing this
    // frame in software (no GPU) needs a core (src/app/jobs/web_models.rs).
    super::jobs::web_models::drawing(true);
    for (name, bytes) in DROPPED.with(|d| std::mem::take(&mut *d.borrow_mut())) {
        match bytes {
            Ok(bytes) => app.open_dropped(super::files::keep_web_file(&name, bytes), ctx),
            Err(e) => app.banner = Some(format!("{name}: could not be read ({e})")),
        }
    }
    CAUSES.with(|c| {
        let mut c = c.borrow_mut();
        for cause in ctx.repaint_causes() {
            *c.entry((cause.file, cause.line)).or_insert(0) += 1;
        }
    });
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(ctx.clone());
        }
    });
    for cmd in INBOX.with(|i| std::mem::take(&mut *i.borrow_mut())) {
        if let Err(e) = app.remote(&cmd) {
            app.banner = Some(e);
        }
    }
}
