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
    let options = AppOptions {
        on_frames: true,
        ..AppOptions::default()
    };
    let web_options = eframe::WebOptions {
        renderer: renderer_from_url(),
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
    page_status("");
    // Kept for the page's lifetime (it owns the event handlers).
    std::mem::forget(runner);
    Ok(())
}

/// How the page draws: egui_glow on WebGL 2 unless the address asks for wgpu
/// (`?renderer=wgpu`, which draws on WebGPU where the browser has it). Drawn in software (a
/// browser with no GPU for the page), glow's frames cost a fraction of wgpu's WebGL path.
fn renderer_from_url() -> eframe::Renderer {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    if search.contains("renderer=wgpu") {
        eframe::Renderer::Wgpu
    } else {
        eframe::Renderer::Glow
    }
}

thread_local! {
    /// Commands from the page's script, applied at the start of the next frame.
    static INBOX: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The last report, and whether the script asked for a newer one.
    static REPORT: std::cell::RefCell<(String, bool)> =
        const { std::cell::RefCell::new((String::new(), true)) };
    /// Dropped files read so far (name, bytes or why not), opened at the next frame.
    static DROPPED: std::cell::RefCell<Vec<(String, Result<Vec<u8>, String>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// The app's context, to wake it for a script.
    static CTX: std::cell::RefCell<Option<egui::Context>> = const { std::cell::RefCell::new(None) };
}

fn wake() {
    CTX.with(|c| {
        if let Some(ctx) = c.borrow().as_ref() {
            ctx.request_repaint();
        }
    });
}

/// Queues a scripted command (JSON, see `src/app/remote.rs`) for the next frame.
#[wasm_bindgen]
pub fn difflab_command(json: String) {
    INBOX.with(|i| i.borrow_mut().push(json));
    wake();
}

/// The app's state as JSON (as of the last frame; the next frame writes a newer one).
#[wasm_bindgen]
pub fn difflab_report() -> String {
    let text = REPORT.with(|r| {
        let mut r = r.borrow_mut();
        r.1 = true;
        r.0.clone()
    });
    wake();
    text
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

/// The page's part of each frame: dropped files and scripted commands in, the report out
/// when asked for.
pub(super) fn frame(app: &mut DiffLabApp, ctx: &egui::Context) {
    for (name, bytes) in DROPPED.with(|d| std::mem::take(&mut *d.borrow_mut())) {
        match bytes {
            Ok(bytes) => app.open_dropped(super::files::keep_web_file(&name, bytes), ctx),
            Err(e) => app.banner = Some(format!("{name}: could not be read ({e})")),
        }
    }
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
    REPORT.with(|r| {
        let mut r = r.borrow_mut();
        if r.1 {
            r.0 = serde_json::to_string(&app.report()).unwrap_or_default();
            r.1 = false;
        }
    });
}
