//! `cargo xtask`: the workspace's checks in plain Rust, so that a local
//! `cargo xtask ci` runs exactly what CI runs.
//!
//! Commands:
//! - `ci`: formatting, clippy with warnings denied, every test (unit,
//!   integration, doc), docs with warnings denied, the codec's feature
//!   combinations, the library crates alone, at their dependencies'
//!   declared minimum versions and with the declared `rust-version`, the
//!   loom models, and `tidy`.
//! - `minimal-versions`, `msrv`: those two checks alone (see
//!   [`mod@versions`]).
//! - `tidy`: checks no linter makes (see [`mod@tidy`]).
//! - `loom`: the loom models of memq-core (`--cfg memq_loom`, release, in
//!   their own target dir so the normal build is not invalidated).
//! - `fuzz [SECONDS]`: the codec's libFuzzer target for that long (default
//!   60) where a nightly toolchain and cargo-fuzz exist; says so and
//!   succeeds where they do not.
//! - `bench [--quick] [--report-only]`: the criterion suite and the latency and memory
//!   benches, then `bench-report/REPORT.md` and `bench-report/throughput.svg`
//!   (see [`mod@bench`]).
//! - `scaling --prepare` / `scaling --report PATH`: scenarios A to D at 1
//!   to 16 runtime workers on a machine without a toolchain (see
//!   [`mod@scaling`]).
//! - `miri`: memq-core's and memq-testkit's tests under miri where a
//!   nightly toolchain with the miri component exists; says so and succeeds
//!   where it does not.
//! - `stress [SCALE]`: the long tier: the history-checked group runs, the
//!   contract model and the group model, `SCALE` times bigger than in CI (default 20), in
//!   release mode.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod scaling;
mod tidy;
mod versions;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("loom") => loom(),
        Some("stress") => stress(args.get(1).map_or("20", String::as_str)),
        Some("fuzz") => fuzz(args.get(1).map_or("60", String::as_str)),
        Some("miri") => miri(),
        Some("minimal-versions") => versions::minimal(&root()),
        Some("msrv") => versions::msrv(&root()),
        Some("bench") => bench::run(
            &root(),
            args.iter().any(|a| a == "--quick"),
            args.iter().any(|a| a == "--report-only"),
        ),
        Some("scaling") => match (args.get(1).map(String::as_str), args.get(2)) {
            (Some("--prepare"), _) => scaling::prepare(&root()),
            (Some("--report"), Some(dir)) => scaling::report(&root(), Path::new(dir)),
            _ => Err("usage: cargo xtask scaling <--prepare|--report PATH>".to_string()),
        },
        Some("tidy") => tidy::run(&root()).map_err(|problems| {
            for p in &problems {
                eprintln!("tidy: {p}");
            }
            format!("{} tidy problem(s)", problems.len())
        }),
        _ => Err(
            "usage: cargo xtask <ci|tidy|loom|stress [SCALE]|fuzz [SECONDS]|miri|minimal-versions|msrv|bench [--quick] [--report-only]|scaling <--prepare|--report PATH>>"
                .to_string(),
        ),
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

pub(crate) fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
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

/// Single features of memq-codec that must each build on their own (and
/// none at all: a build with no format and no C compiler).
const CODEC_FEATURES: &[&str] = &["bincode", "json", "msgpack", "gzip", "zstd"];

/// True when `cargo +nightly <args>` runs.
fn nightly_has(args: &[&str]) -> bool {
    Command::new("cargo")
        .arg("+nightly")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn miri() -> Result<(), String> {
    if !nightly_has(&["miri", "--version"]) {
        eprintln!(
            "xtask: miri skipped: needs a nightly toolchain with miri \
             (`rustup toolchain install nightly --component miri`)"
        );
        return Ok(());
    }
    let status = Command::new("cargo")
        .args([
            "+nightly",
            "miri",
            "test",
            "-p",
            "memq-core",
            "-p",
            "memq-testkit",
        ])
        .args([
            "--lib",
            "--test",
            "log_semantics",
            "--test",
            "misbehaving_user_code",
        ])
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo miri: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo miri failed ({status})"))
    }
}

fn fuzz(seconds: &str) -> Result<(), String> {
    seconds
        .parse::<u32>()
        .map_err(|_| format!("fuzz time must be whole seconds, got {seconds:?}"))?;
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let cargo_fuzz = nightly_has(&["fuzz", "--version"]);
    if !(nightly && cargo_fuzz) {
        eprintln!(
            "xtask: fuzz skipped: needs a nightly toolchain (found: {nightly}) and cargo-fuzz \
             (found: {cargo_fuzz}); install with `rustup toolchain install nightly` and \
             `cargo install cargo-fuzz`"
        );
        return Ok(());
    }
    // libFuzzer writes what it finds into the first corpus directory: a
    // scratch one under target/, so the committed seeds (read-only, the
    // second) stay as they are.
    let scratch = root().join("target/fuzz-corpus/decode");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let seeds = root().join("crates/memq-codec/fuzz/corpus/decode");
    let status = Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "run",
            "decode",
            &scratch.to_string_lossy(),
            &seeds.to_string_lossy(),
            "--",
            &format!("-max_total_time={seconds}"),
        ])
        .current_dir(root().join("crates/memq-codec"))
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo fuzz failed ({status})"))
    }
}

fn loom() -> Result<(), String> {
    let target = root().join("target").join("loom");
    let target = target.to_string_lossy();
    let env = [
        ("RUSTFLAGS", "--cfg memq_loom"),
        ("CARGO_TARGET_DIR", target.as_ref()),
    ];
    // `--nocapture` shows each model's count of schedules explored.
    for krate in ["memq-core", "memq-groups"] {
        cargo(
            &[
                "test",
                "-p",
                krate,
                "--test",
                "loom",
                "--release",
                "--",
                "--nocapture",
            ],
            &env,
        )?;
    }
    Ok(())
}

fn stress(scale: &str) -> Result<(), String> {
    scale
        .parse::<u32>()
        .map_err(|_| format!("stress scale must be a number, got {scale:?}"))?;
    let env = [("MEMQ_STRESS", scale)];
    cargo(
        &[
            "test",
            "--release",
            "-p",
            "memq-groups",
            "--test",
            "group_semantics",
            "competing",
            "--",
            "--nocapture",
        ],
        &env,
    )?;
    cargo(
        &["test", "--release", "-p", "memq-core", "--test", "contract_model"],
        &env,
    )?;
    cargo(
        &["test", "--release", "-p", "memq-groups", "--test", "group_model"],
        &env,
    )?;
    let sequences = 512 * scale.parse::<u32>().unwrap_or(1).max(1);
    eprintln!(
        "xtask: contract model: {sequences} random sequences of up to 119 steps; \
         group model: {sequences} of up to 99; every step checked"
    );
    Ok(())
}

/// `cargo clippy` of what `selection` names, every target, warnings denied.
fn clippy(selection: &[&str]) -> Result<(), String> {
    let args = [&["clippy"], selection, &["--all-targets", "--", "-D", "warnings"]].concat();
    cargo(&args, &[])
}

fn ci() -> Result<(), String> {
    let started = Instant::now();
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    clippy(&["--workspace"])?;
    cargo(&["test", "--workspace", "--all-targets"], &[])?;
    cargo(&["test", "--workspace", "--doc"], &[])?;
    cargo(
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // The codec with no format (no C compiler), then each feature alone.
    cargo(
        &[
            "test",
            "-p",
            "memq-codec",
            "--no-default-features",
            "--lib",
            "--tests",
        ],
        &[],
    )?;
    for features in CODEC_FEATURES {
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
    // The optional observability features: their tests, lints and
    // examples (a workspace build leaves them off).
    clippy(&["-p", "tokio-memq", "--features", "tracing,metrics"])?;
    cargo(
        &[
            "test",
            "-p",
            "tokio-memq",
            "--features",
            "tracing,metrics",
            "--test",
            "observability",
            "--test",
            "observe_adversarial",
        ],
        &[],
    )?;
    cargo(
        &[
            "test",
            "-p",
            "tokio-memq",
            "--features",
            "tracing,metrics",
            "--doc",
            "metrics",
        ],
        &[],
    )?;
    cargo(
        &[
            "test",
            "-p",
            "tokio-memq-examples",
            "--features",
            "metrics",
            "--example",
            "prometheus",
        ],
        &[],
    )?;
    // The queue over Redis (`redis` feature): its lints, the delivery
    // contract run against both backends, and what a store that fails or
    // holds foreign data does (the tests start their own redis-server;
    // with CI set, a missing one fails them).
    clippy(&[
        "-p",
        "tokio-memq",
        "-p",
        "tokio-memq-examples",
        "--features",
        "tokio-memq-examples/redis",
    ])?;
    cargo(
        &[
            "test",
            "-p",
            "tokio-memq",
            "--features",
            "redis",
            "--test",
            "backends",
            "--test",
            "redis_faults",
            "--test",
            "redis_contract",
            "--test",
            "redis_adversarial",
            "--test",
            "redis_review",
        ],
        &[],
    )?;
    // Each library crate built alone, with only the features it asks for
    // (a workspace build unifies features and can hide a missing one).
    for krate in [
        "memq-core",
        "memq-partition",
        "memq-groups",
        "tokio-memq",
        "memq-admin",
    ] {
        cargo(&["check", "-p", krate, "--lib"], &[])?;
    }
    // What the manifests declare is what builds (issue 11, item 7).
    versions::minimal(&root())?;
    versions::msrv(&root())?;
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
