//! `cargo xtask scaling --prepare` and `cargo xtask scaling --report PATH`:
//! scenarios A to D at 1, 2, 4, 8 and 16 runtime workers against the same
//! peers (issue 10, item 8), on a machine with many cores that has no
//! Rust toolchain.
//!
//! `--prepare` builds the `throughput` and `groups` criterion binaries,
//! strips them (about 4 MB each) and writes them with `run.sh` to
//! `target/scaling/`. Carry that folder to the machine and run
//! `target/scaling/run.sh OUT [WORKERS...]`: every benchmark of A to D at
//! capacities 1,024 and 16,384 runs once per worker count (short
//! criterion timings, about 70 s per worker count on 16 cores), its
//! results under `w<N>/` of a scratch folder, and the CPU time it used
//! beside its wall time in `w<N>/cpu.tsv` (spinning shows as CPU time
//! beyond the workers' share). After each worker count the results so far
//! are packed into the one file `OUT/scaling.tgz` (a machine that hands
//! back only a few files, or a run cut off at its time limit, still
//! returns everything finished). `MEMQ_SCALING_FILTER` replaces the
//! benchmark filter (a regex over criterion ids); `MEMQ_LOCK_YIELDS` sets
//! how often a thread that finds a topic's lock taken yields before it
//! parks (16 by default; the bench binaries read it, see memq-core's
//! `tuning-env` feature), and the report names it. Bring `scaling.tgz` (or
//! an unpacked folder) back and `--report PATH` writes
//! `bench-report/SCALING.md`: per scenario and implementation the rate at
//! each worker count, tokio-memq's best against the best peer, and the
//! CPUs each implementation kept busy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::bench::{human, read_criterion, Row};

/// The bench targets that hold scenarios A to D.
const TARGETS: [&str; 2] = ["throughput", "groups"];

/// What `run.sh` runs unless `MEMQ_SCALING_FILTER` says otherwise.
const FILTER: &str = "^[ABCD]_.*_cap(1024|16384)/";

const RUN_SH: &str = r#"#!/bin/sh
# Scenarios A to D at several runtime worker counts (cargo xtask scaling).
# usage: run.sh OUT_DIR [WORKERS...]   (default workers: 1 2 4 8 16)
# Writes one file, OUT_DIR/scaling.tgz, updated after each worker count.
set -u
dest=${1:?usage: run.sh OUT_DIR [WORKERS...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
workers=${*:-1 2 4 8 16}
filter=${MEMQ_SCALING_FILTER:-__FILTER__}
tick=$(getconf CLK_TCK 2>/dev/null || echo 100)
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/memq-scaling.XXXXXX")
out="$scratch/scaling"
mkdir -p "$out"
getconf _NPROCESSORS_ONLN > "$out/cpus" 2>/dev/null || nproc > "$out/cpus"
# Settings the run was made with (MEMQ_LOCK_YIELDS: the lock's yields).
env | grep '^MEMQ_' | sort > "$out/env"
# CPU time (user + system, in ticks) of this shell's waited-for children.
children_cpu() { awk '{print $16 + $17}' /proc/$$/stat; }
for w in $workers; do
    dir="$out/w$w"
    mkdir -p "$dir"
    printf 'id\tcpu_s\twall_s\n' > "$dir/cpu.tsv"
    for bin in throughput groups; do
        # The list goes through a file, not a pipe: the loop must run in
        # this shell, whose children's CPU time it reads.
        "$here/$bin" --list 2>/dev/null | sed -n 's/: benchmark$//p' | grep -E "$filter" > "$dir/$bin.ids"
        while IFS= read -r id; do
            before=$(children_cpu)
            t0=$(date +%s.%N)
            MEMQ_BENCH_WORKERS=$w CRITERION_HOME="$dir" "$here/$bin" --bench --exact "$id" \
                --warm-up-time 0.3 --measurement-time 1 --sample-size 10 --noplot \
                >> "$dir/$bin.log" 2>&1
            t1=$(date +%s.%N)
            after=$(children_cpu)
            awk -v id="$id" -v c=$((after - before)) -v k="$tick" -v a="$t0" -v b="$t1" \
                'BEGIN { printf "%s\t%.2f\t%.2f\n", id, c / k, b - a }' >> "$dir/cpu.tsv"
        done < "$dir/$bin.ids"
    done
    tar -C "$scratch" -czf "$dest/scaling.tgz.part" scaling && mv "$dest/scaling.tgz.part" "$dest/scaling.tgz"
    echo "workers $w done: $(($(wc -l < "$dir/cpu.tsv") - 1)) benchmarks"
done
rm -rf "$scratch"
"#;

pub(crate) fn prepare(root: &Path) -> Result<(), String> {
    let mut args = vec![
        "bench",
        "-p",
        "tokio-memq-benches",
        "--no-run",
        "--message-format=json",
    ];
    for t in TARGETS {
        args.extend(["--bench", t]);
    }
    eprintln!("xtask: cargo {}", args.join(" "));
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(&args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let executables = executables(&String::from_utf8_lossy(&output.stdout));
    let out = root.join("target/scaling");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    for t in TARGETS {
        let from = executables
            .get(t)
            .ok_or_else(|| format!("cargo built no `{t}` bench binary"))?;
        let to = out.join(t);
        std::fs::copy(from, &to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
        // Debug info makes them ten times bigger; without `strip` they
        // still run.
        if Command::new("strip")
            .arg(&to)
            .status()
            .map_or(true, |s| !s.success())
        {
            eprintln!("xtask: could not strip {} (it is carried as it is)", to.display());
        }
    }
    let run = out.join("run.sh");
    std::fs::write(&run, RUN_SH.replace("__FILTER__", FILTER)).map_err(|e| e.to_string())?;
    make_executable(&run)?;
    eprintln!(
        "xtask: target/scaling/ holds {} and run.sh; run `target/scaling/run.sh OUT` on the machine, \
         then `cargo xtask scaling --report OUT/scaling.tgz` here",
        TARGETS.join(", ")
    );
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<(), String> {
    Ok(())
}

/// The bench executables named in cargo's JSON messages, by target name.
fn executables(messages: &str) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    for line in messages.lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) else {
            continue;
        };
        found.insert(name.to_string(), PathBuf::from(exe));
    }
    found
}

/// One benchmark's CPU time and wall time from `cpu.tsv`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cpu {
    cpu_s: f64,
    wall_s: f64,
}

fn read_cpu(path: &Path) -> BTreeMap<String, Cpu> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_cpu(&text)
}

fn parse_cpu(text: &str) -> BTreeMap<String, Cpu> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let id = fields.next()?.to_string();
            let cpu_s = fields.next()?.parse().ok()?;
            let wall_s = fields.next()?.parse().ok()?;
            Some((id, Cpu { cpu_s, wall_s }))
        })
        .collect()
}

/// Everything measured at one worker count.
struct Run {
    scenarios: BTreeMap<String, Vec<Row>>,
    cpu: BTreeMap<String, Cpu>,
}

/// Where the `w<N>` folders of `path` are: `path` itself, its `scaling/`
/// folder, or, for the `scaling.tgz` that `run.sh` writes, its unpacked
/// copy under `target/scaling-report/`.
fn results_dir(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let dir = if path.is_file() {
        let to = root.join("target/scaling-report");
        let _ = std::fs::remove_dir_all(&to);
        std::fs::create_dir_all(&to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(path)
            .arg("-C")
            .arg(&to)
            .status()
            .map_err(|e| format!("cannot run tar: {e}"))?;
        if !status.success() {
            return Err(format!("tar could not unpack {}", path.display()));
        }
        to
    } else {
        path.to_path_buf()
    };
    let inner = dir.join("scaling");
    Ok(if inner.is_dir() { inner } else { dir })
}

pub(crate) fn report(root: &Path, path: &Path) -> Result<(), String> {
    let dir = &results_dir(root, path)?;
    let mut runs = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(workers) = name.strip_prefix('w').and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let scenarios = read_criterion(&entry.path())?;
        let cpu = read_cpu(&entry.path().join("cpu.tsv"));
        runs.insert(workers, Run { scenarios, cpu });
    }
    if runs.is_empty() {
        return Err(format!("no w<N> folders in {}", dir.display()));
    }
    let cpus = std::fs::read_to_string(dir.join("cpus"))
        .ok()
        .and_then(|c| c.trim().parse().ok());
    let mut text = table(&runs, cpus);
    let settings = std::fs::read_to_string(dir.join("env")).unwrap_or_default();
    let settings: Vec<&str> = settings.lines().filter(|l| !l.trim().is_empty()).collect();
    if !settings.is_empty() {
        text = text.replacen("\n\n", &format!("\n\nRun with `{}`.\n\n", settings.join(" ")), 1);
    }
    let out = root.join("bench-report");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    std::fs::write(out.join("SCALING.md"), &text).map_err(|e| e.to_string())?;
    println!("{text}");
    eprintln!("xtask: wrote bench-report/SCALING.md");
    Ok(())
}

/// The report; `cpus`: how many the measuring machine had (`run.sh`
/// records it).
fn table(runs: &BTreeMap<usize, Run>, cpus: Option<usize>) -> String {
    let mut s = String::new();
    let cpus = cpus.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
    let _ = writeln!(
        s,
        "# Scaling with runtime workers\n\n`cargo xtask scaling` on {cpus} CPUs: scenarios A to D \
         at the capacity each name ends with, criterion's mean \
         over short runs. Each cell: rate, and in parentheses the CPUs the benchmark kept busy on \
         average (CPU time over wall time, criterion's own analysis included).\n"
    );
    let mut scenarios: Vec<&String> = runs.values().flat_map(|r| r.scenarios.keys()).collect();
    scenarios.sort();
    scenarios.dedup();
    let workers: Vec<usize> = runs.keys().copied().collect();
    for scenario in scenarios {
        let _ = writeln!(s, "## {scenario}\n");
        let mut header = String::from("| implementation |");
        let mut rule = String::from("|---|");
        for w in &workers {
            let _ = write!(header, " {w} worker{} |", if *w == 1 { "" } else { "s" });
            rule.push_str("---:|");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        let mut names: Vec<&str> = runs
            .values()
            .filter_map(|r| r.scenarios.get(scenario))
            .flatten()
            .map(|r| r.name.as_str())
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let mut line = format!("| {name} |");
            for run in runs.values() {
                let rate = run
                    .scenarios
                    .get(scenario)
                    .and_then(|rows| rows.iter().find(|r| r.name == name));
                let cpu = run.cpu.get(&format!("{scenario}/{name}"));
                match (rate, cpu) {
                    (Some(r), Some(c)) if c.wall_s > 0.0 => {
                        let _ = write!(line, " {} ({:.1}) |", human(r.rate), c.cpu_s / c.wall_s);
                    }
                    (Some(r), _) => {
                        let _ = write!(line, " {} |", human(r.rate));
                    }
                    (None, _) => line.push_str(" |"),
                }
            }
            let _ = writeln!(s, "{line}");
        }
        let mut line = String::from("| **best tokio-memq / best peer** |");
        for run in runs.values() {
            let rows = run.scenarios.get(scenario).map(Vec::as_slice).unwrap_or(&[]);
            match crate::bench::best(rows) {
                (Some(mine), Some(peer)) => {
                    let _ = write!(line, " {:.2}x ({}) |", mine.rate / peer.rate, peer.name);
                }
                _ => line.push_str(" |"),
            }
        }
        let _ = writeln!(s, "{line}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bench_executables_in_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"tokio-memq"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"groups"},"executable":"/t/groups-1"}"#,
            "\nnot json\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        let found = executables(messages);
        assert_eq!(found.len(), 1);
        assert_eq!(found["groups"], PathBuf::from("/t/groups-1"));
    }

    #[test]
    fn reads_cpu_lines_and_skips_broken_ones() {
        let cpu = parse_cpu("id\tcpu_s\twall_s\nA_x/kanal\t3.50\t1.75\nbroken\n");
        assert_eq!(cpu.len(), 1);
        assert_eq!(
            cpu["A_x/kanal"],
            Cpu {
                cpu_s: 3.5,
                wall_s: 1.75
            }
        );
    }

    #[test]
    fn the_table_has_a_column_per_worker_count_and_the_ratio_to_the_best_peer() {
        let run = |ours: f64, kanal: f64| Run {
            scenarios: BTreeMap::from([(
                "A_cap16384".to_string(),
                vec![
                    Row {
                        name: "kanal".into(),
                        rate: kanal,
                    },
                    Row {
                        name: "tokio-memq recv".into(),
                        rate: ours,
                    },
                ],
            )]),
            cpu: BTreeMap::from([(
                "A_cap16384/tokio-memq recv".to_string(),
                Cpu {
                    cpu_s: 4.0,
                    wall_s: 2.0,
                },
            )]),
        };
        let runs = BTreeMap::from([(1, run(2e6, 4e6)), (16, run(8e6, 4e6))]);
        let text = table(&runs, Some(16));
        assert!(text.contains("on 16 CPUs"), "{text}");
        assert!(
            text.contains("| implementation | 1 worker | 16 workers |"),
            "{text}"
        );
        assert!(
            text.contains("| tokio-memq recv | 2.00 M/s (2.0) | 8.00 M/s (2.0) |"),
            "{text}"
        );
        assert!(text.contains("| kanal | 4.00 M/s | 4.00 M/s |"), "{text}");
        assert!(text.contains("| 0.50x (kanal) | 2.00x (kanal) |"), "{text}");
    }
}
