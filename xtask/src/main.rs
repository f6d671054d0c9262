//! `cargo xtask`: the workspace's checks in plain Rust, so that a local
//! `cargo xtask ci` runs exactly what CI runs.
//!
//! Commands:
//! - `ci`: formatting, clippy with warnings denied, every test (unit,
//!   integration, doc), docs with warnings denied, the codec's feature
//!   combinations, and `tidy`.
//! - `tidy`: checks no linter makes (see [`tidy`]).
//! - `loom`: the loom models of memq-core (`--cfg memq_loom`, release, in
//!   their own target dir so the normal build is not invalidated).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod tidy;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("loom") => loom(),
        Some("tidy") => tidy::run(&root()).map_err(|problems| {
            for p in &problems {
                eprintln!("tidy: {p}");
            }
            format!("{} tidy problem(s)", problems.len())
        }),
        _ => Err("usage: cargo xtask <ci|tidy|loom>".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!("xtask: ... {:.0?}", started.elapsed());
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// Feature combinations of memq-codec that must each build on their own.
const CODEC_FEATURE_SETS: &[&str] = &[];

fn loom() -> Result<(), String> {
    let target = root().join("target").join("loom");
    let target = target.to_string_lossy();
    cargo(
        &["test", "-p", "memq-core", "--test", "loom", "--release"],
        &[("RUSTFLAGS", "--cfg memq_loom"), ("CARGO_TARGET_DIR", &target)],
    )
}

fn ci() -> Result<(), String> {
    let started = Instant::now();
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        &[],
    )?;
    cargo(&["test", "--workspace", "--all-targets"], &[])?;
    cargo(&["test", "--workspace", "--doc"], &[])?;
    cargo(
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    for features in CODEC_FEATURE_SETS {
        cargo(
            &[
                "check",
                "-p",
                "memq-codec",
                "--no-default-features",
                "--features",
                features,
            ],
            &[],
        )?;
    }
    loom()?;
    tidy::run(&root()).map_err(|problems| {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        format!("{} tidy problem(s)", problems.len())
    })?;
    eprintln!("xtask: ci passed in {:.0?}", started.elapsed());
    Ok(())
}
