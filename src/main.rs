//! The `difflab` binary: parses the command line and maps errors to exit codes
//! (2 for bad input, 1 for a backend failure), each on one line.

use clap::Parser;

use difflab::DiffError;
use difflab::app::{AppOptions, run as run_app};
use difflab::cli::{Cli, Launch, run};

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
    // Mesa's Vulkan loader prints an error per adapter query when this is unset (a bare shell,
    // CI); point it at the temporary folder before any thread starts.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: nothing else runs yet, so no other thread reads the environment.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    // The binary decides between the window and the command line; neither imports the other.
    let result = match Cli::parse().launch() {
        Launch::App { device, fresh } => run_app(AppOptions {
            device,
            fresh,
            state_file: None,
        }),
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
