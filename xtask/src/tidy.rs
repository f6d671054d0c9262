//! Checks a linter does not make: every Rust file opens with a `//!` doc
//! comment; no `dbg!` or `todo!` is left behind; only the files listed
//! in `UNSAFE_ALLOWED` allow `unsafe` code; crate dependencies point
//! downward only (the layering table in ARCHITECTURE.md).

use std::path::{Path, PathBuf};

/// The crates of ours each crate may depend on (normal dependencies).
const LAYERS: &[(&str, &[&str])] = &[
    ("memq-core", &[]),
    ("memq-codec", &[]),
    ("memq-partition", &["memq-core"]),
    ("memq-groups", &["memq-core", "memq-partition"]),
    (
        "tokio-memq",
        &[
            "memq-core",
            "memq-codec",
            "memq-partition",
            "memq-groups",
            "memq-redis",
        ],
    ),
    ("memq-admin", &["tokio-memq"]),
    ("memq-redis", &["memq-codec"]),
];

/// The files that may allow `unsafe` code: none in the libraries; in test
/// support, two counting allocators (`GlobalAlloc` is unsafe to
/// implement). A library module that needs it (issue 10 allows one, in
/// memq-core, once a benchmark shows the need) is added here.
const UNSAFE_ALLOWED: &[&str] = &[
    "crates/memq-testkit/src/alloc.rs",
    "crates/memq-codec/tests/limits_bombs.rs",
];

/// Runs every check; returns the problems found.
pub(crate) fn run(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "examples", "benches", "xtask"] {
        collect_rs(&root.join(dir), &mut files);
    }
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            problems.push(format!("{}: unreadable", file.display()));
            continue;
        };
        let rel = file.strip_prefix(root).unwrap_or(file).display().to_string();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{rel}: does not open with a `//!` comment saying what it is"
            ));
        }
        problems.extend(unsafe_not_allowed(&rel, &text));
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for banned in [concat!("dbg", "!("), concat!("todo", "!(")] {
                if code.contains(banned) {
                    problems.push(format!("{rel}:{}: `{banned}` left in", i + 1));
                }
            }
        }
    }
    for (krate, allowed) in LAYERS {
        let manifest = root.join("crates").join(krate).join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue; // not created yet
        };
        for dep in ours_in_dependencies(&text) {
            if !allowed.contains(&dep.as_str()) {
                problems.push(format!(
                    "crates/{krate} depends on {dep}: dependencies must point downward"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A problem if the file at `rel` lifts the workspace's `unsafe_code`
/// lint (`allow` or `expect`) and is not listed in [`UNSAFE_ALLOWED`].
fn unsafe_not_allowed(rel: &str, text: &str) -> Option<String> {
    let lifts = [
        concat!("allow(", "unsafe_code)"),
        concat!("expect(", "unsafe_code)"),
    ]
    .iter()
    .any(|attr| text.contains(attr));
    let listed = UNSAFE_ALLOWED.contains(&rel.replace('\\', "/").as_str());
    (lifts && !listed).then(|| {
        format!(
            "{rel}: allows `unsafe` code; only {} may",
            UNSAFE_ALLOWED.join(", ")
        )
    })
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "corpus" && name != "artifacts" {
                collect_rs(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Names of our crates in the `[dependencies]` (and target-specific
/// dependencies) tables of a manifest; dev-dependencies are allowed to
/// reach sideways for tests.
fn ours_in_dependencies(manifest: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]"
                || (line.starts_with("[target.") && line.ends_with(".dependencies]"));
            continue;
        }
        if !in_deps {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
        if name.starts_with("memq-") || name == "tokio-memq" {
            deps.push(name.to_string());
        }
    }
    deps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        if let Err(problems) = run(root) {
            panic!("tidy problems:\n{}", problems.join("\n"));
        }
    }

    #[test]
    fn unsafe_is_allowed_only_where_listed() {
        let lifted = concat!("//! x\n#![allow(", "unsafe_code)]\n");
        let expected = concat!("//! x\n#[expect(", "unsafe_code)]\nfn f() {}\n");
        assert!(unsafe_not_allowed("crates/memq-core/src/log.rs", lifted).is_some());
        assert!(unsafe_not_allowed("crates/memq-core/src/log.rs", expected).is_some());
        assert!(unsafe_not_allowed("crates/memq-testkit/src/alloc.rs", lifted).is_none());
        assert!(unsafe_not_allowed("crates\\memq-testkit\\src\\alloc.rs", lifted).is_none());
        assert!(unsafe_not_allowed("crates/memq-core/src/log.rs", "//! no unsafe here\n").is_none());
    }

    #[test]
    fn finds_our_dependencies_only_in_normal_tables() {
        let manifest = "[dependencies]\nmemq-core.workspace = true\nbytes = \"1\"\n\
                        [dev-dependencies]\ntokio-memq = { path = \"x\" }\n";
        assert_eq!(ours_in_dependencies(manifest), vec!["memq-core".to_string()]);
    }
}
