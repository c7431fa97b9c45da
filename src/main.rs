//! mnq-gpu: parse → dispatch → print the error chain once → exit code.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A closed stdout (`mnq-gpu eval --json | head`) ends the program quietly, as for other Unix tools, instead
    // of a panic in println!.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Before any thread starts: it sets an environment variable for the Vulkan loader.
    mnq_gpu::gpu::context::quiet_headless_vulkan();
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
