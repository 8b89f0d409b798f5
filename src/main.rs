//! The `difflab` binary: on the desktop it parses the command line and maps errors to exit
//! codes (2 for bad input, 1 for a backend failure), each on one line; in the browser (wasm32)
//! it starts the app on the page (src/app/web.rs).

#[cfg(not(target_arch = "wasm32"))]
use difflab::DiffError;
#[cfg(not(target_arch = "wasm32"))]
use difflab::app::{AppOptions, run as run_app};
#[cfg(not(target_arch = "wasm32"))]
use difflab::cli::{Cli, Launch, run};

/// The page's entry: the app on its canvas (the command line is for the desktop).
#[cfg(target_arch = "wasm32")]
fn main() {
    // The static constructors (cubecl's `pliron` registers its IR with `inventory`), run once.
    // A module that never calls this itself is linked "command-style": wasm-ld then runs every
    // constructor again at the start of each exported function, and wasm-bindgen's glue calls
    // an export for every JS object it hands over, so that was half of each frame's time in
    // the page (docs/web.md). Calling it here makes the module a reactor.
    // SAFETY: the linker's constructor function; the constructors are idempotent and this is the
    // first code the page runs.
    unsafe { __wasm_call_ctors() };
    difflab::app::web::start();
}

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// Synthesised by wasm-ld: runs the module's static constructors.
    fn __wasm_call_ctors();
}

/// The system allocator, except that a failed allocation ends the program with one line and
/// exit code 2 (what to do about it) instead of Rust's abort. `difflab sample` and `train`
/// refuse a batch that cannot fit before they start (src/model/memory.rs); this is the last
/// line of defence, under `ulimit -v` or when the estimate was wrong.
#[cfg(not(target_arch = "wasm32"))]
struct OneLineOnOom;

// SAFETY: every call goes straight to `System`; only a null result is handled differently.
#[cfg(not(target_arch = "wasm32"))]
unsafe impl std::alloc::GlobalAlloc for OneLineOnOom {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { std::alloc::System.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: OneLineOnOom = OneLineOnOom;

/// Prints the one line without allocating (a fixed buffer) and exits with 2.
#[cfg(not(target_arch = "wasm32"))]
fn out_of_memory(bytes: usize) -> ! {
    use std::io::Write;
    static ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if ONCE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        std::process::abort();
    }
    let mut buf = [0u8; 200];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = writeln!(
        cursor,
        "error: out of memory (a request for {} MB failed): ask for less (a smaller --batch, --count, --size or image)",
        bytes >> 20
    );
    let n = usize::try_from(cursor.position()).unwrap_or(0);
    let _ = std::io::stderr().write_all(&buf[..n]);
    std::process::exit(2);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    // An unexpected panic still ends in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        // A dependency's panic that difflab catches and reports as an error itself.
        if difflab::error::in_guarded_call() {
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(std::string::ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let first_line = msg.lines().next().unwrap_or_default().to_string();
        eprintln!("error: internal error: {first_line}");
        std::process::exit(101);
    }));
    difflab::platform::keep_freed_memory();
    // Mesa's Vulkan loader prints an error per adapter query when this is unset (a bare shell,
    // CI); point it at the temporary folder before any thread starts. (Linux and the BSDs only:
    // Windows and macOS have no such variable and no Mesa.)
    if cfg!(all(unix, not(target_os = "macos"))) && std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: nothing else runs yet, so no other thread reads the environment.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    // The binary decides between the window and the command line; neither imports the other.
    let cli = match Cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // --help and --version print as clap prints them (to stdout, exit 0); a missing
            // command's help too. Every other parse error is bad input: one line, exit 2.
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("{}", difflab::cli::clap_error_line(&e.render().to_string()));
            std::process::exit(2);
        }
    };
    let result = match cli.launch() {
        Launch::App {
            device,
            fresh,
            weights,
        } => {
            // A bad weights file is one line and exit 2 before any window opens.
            match weights.as_deref().map(difflab::app::unet_file::open) {
                Some(Err(e)) => Err(e),
                _ => run_app(AppOptions {
                    device,
                    fresh,
                    state_file: None,
                    gpu_refused: None,
                    weights,
                    on_frames: false,
                    page_draws_in_software: None,
                }),
            }
        }
        Launch::Command { device, command } => run(device, *command),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        let code = match e {
            DiffError::Backend(_) => 1,
            _ => 2,
        };
        std::process::exit(code);
    }
}
