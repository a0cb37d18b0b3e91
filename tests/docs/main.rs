//! The command examples of README.md and docs/*.md, run against the `factorwatch` binary, so that
//! a document cannot say what the binary no longer does (docs/architecture.md, "Tests of the
//! documentation").
//!
//! - `offline_examples`: every ```` ```console ```` block is a [trycmd] case: each `$ factorwatch
//!   ...` line runs in a folder holding a copy of `rules/` and the blocks the document marks
//!   `<!-- file: PATH -->`, and what follows it is its expected output (stderr included), with
//!   `[..]` for any text within a line and `...` for any lines.
//! - `server_examples` (server.rs): the ```` ```console,ignore ```` blocks need a running server;
//!   each is run by a scenario that starts one.
//!
//! `TRYCMD=overwrite cargo test --test docs` writes the binary's output into the documents.

mod layout;
mod markdown;
#[path = "../it/ports.rs"]
mod ports;
mod server;
#[test]
fn offline_examples() {
    let cases = layout::lay_out();
    trycmd::TestCases::new()
        .register_bin(
            "factorwatch",
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_factorwatch")),
        )
        .case(cases.join("*.md"));
}
