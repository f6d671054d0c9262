//! The declared versions are the tested ones.
//!
//! - [`minimal`]: the library crates build with every direct dependency
//!   at the lowest version their manifests allow (cargo's
//!   `-Z direct-minimal-versions`, done on stable: a scratch copy of the
//!   workspace, `cargo update --precise` per dependency, `cargo check`).
//!   A declaration lower than what the code uses (a user's lockfile may
//!   hold exactly that version) fails here.
//! - [`msrv`]: the library crates build with the declared `rust-version`
//!   (installed with rustup's minimal profile when missing).
//!
//! Both need the network the first time (crates.io for old versions,
//! rustup for the toolchain). Without it they fail under `CI` and say
//! they skipped elsewhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// The published library crates: what users build.
const LIBRARIES: [&str; 6] = [
    "memq-core",
    "memq-codec",
    "memq-partition",
    "memq-groups",
    "tokio-memq",
    "memq-admin",
];

/// Runs a command in `dir`, with the variables cargo sets for a build
/// script or `cargo run` removed (they would pin the child to this
/// toolchain).
fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let started = Instant::now();
    eprintln!("xtask: {program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir).envs(env.iter().copied());
    for (key, _) in std::env::vars() {
        if key == "CARGO"
            || key == "RUSTC"
            || key == "RUSTDOC"
            || key == "RUSTUP_TOOLCHAIN"
            || key.starts_with("CARGO_PKG")
            || key.starts_with("CARGO_MANIFEST")
        {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().map_err(|e| format!("cannot run {program}: {e}"))?;
    eprintln!("xtask: ... {:.0?}", started.elapsed());
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether a failure to reach the network or a toolchain may be skipped:
/// everywhere but CI.
fn may_skip(what: &str, why: &str) -> Result<(), String> {
    if std::env::var_os("CI").is_some() {
        return Err(format!("{what}: {why}"));
    }
    eprintln!("xtask: {what} skipped ({why}); CI runs it");
    Ok(())
}

/// `^1.47` as `1.47.0`: the lowest version a requirement allows.
fn lowest(req: &str) -> Option<String> {
    let v = req.trim().strip_prefix('^').unwrap_or(req.trim());
    let mut parts: Vec<&str> = v.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return None;
    }
    parts.resize(3, "0");
    Some(parts.join("."))
}

fn numeric(v: &str) -> Vec<u64> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// The direct registry dependencies of the library crates (normal ones,
/// not dev or build), each with the lowest version every library's
/// requirement allows.
fn direct_minimums(metadata: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut lowest_of: BTreeMap<String, String> = BTreeMap::new();
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?;
    for package in packages {
        if !LIBRARIES.contains(&package["name"].as_str().unwrap_or("")) {
            continue;
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let registry = dep["source"].as_str().is_some_and(|s| s.starts_with("registry+"));
            if !dep["kind"].is_null() || !registry {
                continue;
            }
            let name = dep["name"].as_str().unwrap_or_default().to_string();
            let req = dep["req"].as_str().unwrap_or_default();
            let Some(low) = lowest(req) else {
                return Err(format!("{name}: requirement {req} is not a plain caret version"));
            };
            let keep = lowest_of
                .get(&name)
                .is_none_or(|old| numeric(&low) > numeric(old));
            if keep {
                lowest_of.insert(name, low);
            }
        }
    }
    Ok(lowest_of)
}

/// Copies the tracked files of `root` into `to`, a workspace of the
/// library crates only (tools and benches have dependencies of their own
/// that need not build at the libraries' minimums).
fn scratch_copy(root: &Path, to: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(to);
    let files = run(root, "git", &["ls-files"], &[])?;
    for file in files.lines() {
        let (from, dest) = (root.join(file), to.join(file));
        if !from.is_file() {
            continue;
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::copy(&from, &dest).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    std::fs::copy(root.join("Cargo.lock"), to.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let manifest = to.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
    let start = text.find("members = [").ok_or("Cargo.toml: no members list")?;
    let end = start
        + text[start..]
            .find(']')
            .ok_or("Cargo.toml: members list not closed")?;
    let members: Vec<String> = LIBRARIES
        .iter()
        .chain(&["memq-testkit"])
        .map(|c| format!("    \"crates/{c}\","))
        .collect();
    let text = format!(
        "{}members = [\n{}\n{}",
        &text[..start],
        members.join("\n"),
        &text[end..]
    );
    std::fs::write(&manifest, text).map_err(|e| e.to_string())?;
    // The facade's optional `redis` feature is not part of this check:
    // memq-redis is not a library here (the `redis` crate needs Rust 1.88
    // and tokio 1.51, more than the libraries declare), and an optional
    // dependency still takes part in the lockfile.
    let facade = to.join("crates/tokio-memq/Cargo.toml");
    let text = std::fs::read_to_string(&facade).map_err(|e| e.to_string())?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("memq-redis ="))
        .map(|l| {
            if l.starts_with("redis = [") {
                "redis = []"
            } else {
                l
            }
        })
        .collect();
    std::fs::write(&facade, kept.join("\n") + "\n").map_err(|e| e.to_string())
}

/// The library crates checked with every direct dependency at its lowest
/// declared version.
pub(crate) fn minimal(root: &Path) -> Result<(), String> {
    let scratch = root.join("target/minimal-versions/workspace");
    scratch_copy(root, &scratch)?;
    let metadata = run(
        &scratch,
        "cargo",
        &["metadata", "--format-version", "1", "--no-deps"],
        &[],
    )?;
    let metadata: Value = serde_json::from_str(&metadata).map_err(|e| format!("cargo metadata: {e}"))?;
    let mut todo: Vec<(String, String)> = direct_minimums(&metadata)?.into_iter().collect();
    // One dependency's old version may need another's lowered first
    // (serde_json 1.0.120 before serde 1.0.200): retry until nothing moves.
    while !todo.is_empty() {
        let before = todo.len();
        let mut failed = Vec::new();
        let mut last_error = String::new();
        for (name, version) in todo {
            let spec = format!("{name}@{}", current(&scratch, &name).unwrap_or_default());
            let package = if spec.ends_with('@') { name.clone() } else { spec };
            if let Err(e) = run(
                &scratch,
                "cargo",
                &["update", "-p", &package, "--precise", &version],
                &[],
            ) {
                if e.contains("failed to fetch") || e.contains("failed to download") || e.contains("network")
                {
                    return may_skip("minimal versions", "crates.io cannot be reached");
                }
                last_error = e;
                failed.push((name, version));
            }
        }
        if failed.len() == before {
            return Err(format!(
                "cannot lower {} to the declared minimum: {last_error}",
                failed
                    .iter()
                    .map(|(n, v)| format!("{n} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        todo = failed;
    }
    let target = root.join("target/minimal-versions/target");
    let target = target.to_string_lossy();
    let mut args = vec!["check", "--lib"];
    for krate in LIBRARIES {
        args.extend(["-p", krate]);
    }
    run(&scratch, "cargo", &args, &[("CARGO_TARGET_DIR", &target)]).map(drop)
}

/// The version of `name` in the scratch lockfile (to name the package
/// unambiguously when two versions are locked).
fn current(scratch: &Path, name: &str) -> Option<String> {
    let lock = std::fs::read_to_string(scratch.join("Cargo.lock")).ok()?;
    let mut found = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                found.push(v.trim_end_matches('"').to_string());
            }
        }
    }
    // Ambiguous: let cargo say so.
    (found.len() == 1).then(|| found.remove(0))
}

/// The library crates checked with the workspace's `rust-version`.
pub(crate) fn msrv(root: &Path) -> Result<(), String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let version = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .ok_or("Cargo.toml declares no rust-version")?;
    if run(root, "rustup", &["--version"], &[]).is_err() {
        return may_skip("MSRV check", "rustup is not installed");
    }
    let installed = run(root, "rustup", &["toolchain", "list"], &[])?;
    if !installed.lines().any(|l| l.starts_with(&format!("{version}-"))) {
        if let Err(e) = run(
            root,
            "rustup",
            &["toolchain", "install", &version, "--profile", "minimal"],
            &[],
        ) {
            return may_skip("MSRV check", &format!("cannot install Rust {version}: {e}"));
        }
    }
    let target = root.join("target/msrv");
    let target = target.to_string_lossy();
    let mut args = vec!["run", &version, "cargo", "check", "--lib"];
    for krate in LIBRARIES {
        args.extend(["-p", krate]);
    }
    run(root, "rustup", &args, &[("CARGO_TARGET_DIR", &target)]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_versions_of_caret_requirements() {
        assert_eq!(lowest("^1.47").as_deref(), Some("1.47.0"));
        assert_eq!(lowest("^1").as_deref(), Some("1.0.0"));
        assert_eq!(lowest("^0.4.5").as_deref(), Some("0.4.5"));
        assert_eq!(lowest(">=1, <2"), None);
        assert_eq!(lowest("=2.0.0-alpha.1"), None);
    }

    #[test]
    fn the_highest_minimum_of_several_requirements_wins() {
        let metadata = serde_json::json!({"packages": [
            {"name": "memq-codec", "dependencies": [
                {"name": "serde", "req": "^1.0.200", "kind": null, "source": "registry+https://github.com/rust-lang/crates.io-index"},
                {"name": "proptest", "req": "^1.9", "kind": "dev", "source": "registry+https://github.com/rust-lang/crates.io-index"}
            ]},
            {"name": "tokio-memq", "dependencies": [
                {"name": "serde", "req": "^1.0", "kind": null, "source": "registry+https://github.com/rust-lang/crates.io-index"},
                {"name": "memq-core", "req": "=2.0.0-alpha.1", "kind": null, "source": null}
            ]},
            {"name": "xtask", "dependencies": [
                {"name": "serde_json", "req": "^1", "kind": null, "source": "registry+https://github.com/rust-lang/crates.io-index"}
            ]}
        ]});
        let got = direct_minimums(&metadata).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [("serde".to_string(), "1.0.200".to_string())]
        );
    }
}
