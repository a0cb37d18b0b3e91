//! The `factorwatch` command line: parses arguments and runs the command with
//! [`factorwatch::cli`], which does the rest.

use std::process::ExitCode;

use clap::Parser;
use factorwatch::cli::Cli;

/// jemalloc, not glibc's malloc. Under tokio, glibc gives each thread that allocates an arena of
/// its own and keeps what each one freed, so at a steady rate the resident memory kept rising far
/// above the live data; jemalloc keeps it flat and spends less CPU per event (BENCHMARKS.md,
/// "Latest changes", 2.).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation: a background thread gives freed pages back
/// to the kernel after 100 ms (`dirty_decay_ms`, ten seconds by default) and skips the lazy
/// "muzzy" stage (`muzzy_decay_ms: 0`), so RSS follows the live data. Under heavy load most of
/// the resident memory above the live data is pages freed but not yet given back: 100 ms keeps
/// far less of it than 1 s did, for the same CPU per event, where 0 (give back at once) cost much
/// of the intake (BENCHMARKS.md, "Latest changes", 3.).
/// `_RJEM_MALLOC_CONF` in the environment overrides them.
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_SETTINGS: &u8 =
    &b"background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0\0"[0];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    match runtime.block_on(factorwatch::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
