//! `cargo xtask bench [--quick]`: runs the criterion suite and the latency
//! and memory benches, then writes `bench-report/REPORT.md` (throughput,
//! latency, memory, ratios to every peer, the DESIGN.md targets met or
//! not) and `bench-report/throughput.svg`. Criterion's own HTML reports
//! stay in `target/criterion/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// One measured implementation in one scenario.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    /// Messages (or deliveries) per second.
    rate: f64,
}

fn ours(name: &str) -> bool {
    name.starts_with("tokio-memq")
}

pub(crate) fn run(root: &Path, quick: bool) -> Result<(), String> {
    let target = root.join("target");
    let _ = std::fs::remove_dir_all(target.join("criterion"));
    let _ = std::fs::remove_dir_all(target.join("bench-results"));
    let timing: &[&str] = if quick {
        &[
            "--warm-up-time",
            "0.5",
            "--measurement-time",
            "1.5",
            "--sample-size",
            "10",
        ]
    } else {
        &[
            "--warm-up-time",
            "2",
            "--measurement-time",
            "5",
            "--sample-size",
            "20",
        ]
    };
    let mut args = vec!["bench", "-p", "tokio-memq-benches", "--benches", "--"];
    args.extend_from_slice(timing);
    let env: &[(&str, &str)] = if quick { &[("MEMQ_BENCH_QUICK", "1")] } else { &[] };
    crate::cargo(&args, env)?;
    let scenarios = read_criterion(&target.join("criterion"))?;
    let latency = read_json(&target.join("bench-results/latency.json"));
    let memory = read_json(&target.join("bench-results/memory.json"));
    let out = root.join("bench-report");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let report = report(&scenarios, latency.as_ref(), memory.as_ref(), quick);
    std::fs::write(out.join("REPORT.md"), &report).map_err(|e| e.to_string())?;
    std::fs::write(out.join("throughput.svg"), svg(&scenarios)).map_err(|e| e.to_string())?;
    println!("{report}");
    eprintln!("xtask: wrote bench-report/REPORT.md and bench-report/throughput.svg");
    Ok(())
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Rates per scenario from criterion's `benchmark.json` and
/// `estimates.json` files.
fn read_criterion(dir: &Path) -> Result<BTreeMap<String, Vec<Row>>, String> {
    let mut scenarios: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let groups =
        std::fs::read_dir(dir).map_err(|e| format!("no criterion results in {}: {e}", dir.display()))?;
    for group in groups.flatten() {
        let Ok(benches) = std::fs::read_dir(group.path()) else {
            continue;
        };
        for bench in benches.flatten() {
            let new = bench.path().join("new");
            let (Some(meta), Some(est)) = (
                read_json(&new.join("benchmark.json")),
                read_json(&new.join("estimates.json")),
            ) else {
                continue;
            };
            let elements = meta["throughput"]["Elements"].as_f64();
            let mean_ns = est["mean"]["point_estimate"].as_f64();
            let (Some(elements), Some(mean_ns)) = (elements, mean_ns) else {
                continue;
            };
            let group_id = meta["group_id"].as_str().unwrap_or("?").to_string();
            let name = meta["function_id"].as_str().unwrap_or("?").to_string();
            scenarios.entry(group_id).or_default().push(Row {
                name,
                rate: elements / (mean_ns * 1e-9),
            });
        }
    }
    for rows in scenarios.values_mut() {
        rows.sort_by(|a, b| b.rate.total_cmp(&a.rate));
    }
    Ok(scenarios)
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M/s", rate / 1e6)
    } else {
        format!("{:.1} k/s", rate / 1e3)
    }
}

/// The best tokio-memq rate of a scenario and the best peer rate.
fn best(rows: &[Row]) -> (Option<&Row>, Option<&Row>) {
    (
        rows.iter().find(|r| ours(&r.name)),
        rows.iter().find(|r| !ours(&r.name)),
    )
}

fn report(
    scenarios: &BTreeMap<String, Vec<Row>>,
    latency: Option<&Value>,
    memory: Option<&Value>,
    quick: bool,
) -> String {
    let mut s = String::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let workers = std::env::var("MEMQ_BENCH_WORKERS").unwrap_or_else(|_| "2".into());
    let _ = writeln!(s, "# tokio-memq benchmark report\n");
    let _ = writeln!(
        s,
        "`cargo xtask bench{}` on {cpus} CPUs, {workers} runtime workers. Rates are criterion's mean; \
         the machine may be shared and noisy, so compare ratios within this report.\n",
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(s, "## Throughput\n");
    for (scenario, rows) in scenarios {
        let (mine, _) = best(rows);
        let _ = writeln!(s, "### {scenario}\n");
        let _ = writeln!(s, "| implementation | rate | best tokio-memq / this |");
        let _ = writeln!(s, "|---|---:|---:|");
        for r in rows {
            let ratio = match mine {
                Some(m) if !ours(&r.name) => format!("{:.2}x", m.rate / r.rate),
                _ => String::new(),
            };
            let _ = writeln!(s, "| {} | {} | {ratio} |", r.name, human(r.rate));
        }
        let _ = writeln!(s);
    }
    if let Some(Value::Array(rows)) = latency {
        let _ = writeln!(s, "## F: latency at 5,000 messages/s\n");
        let _ = writeln!(s, "| implementation | p50 | p99 | p999 |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {:.1} µs | {:.1} µs | {:.1} µs |",
                r["peer"].as_str().unwrap_or("?"),
                r["p50_us"].as_f64().unwrap_or(f64::NAN),
                r["p99_us"].as_f64().unwrap_or(f64::NAN),
                r["p999_us"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(s);
    }
    if let Some(Value::Array(rows)) = memory {
        let _ = writeln!(s, "## H: memory per retained message beyond the payload\n");
        let _ = writeln!(s, "| implementation | bytes/message |");
        let _ = writeln!(s, "|---|---:|");
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {:.1} |",
                r["peer"].as_str().unwrap_or("?"),
                r["bytes_per_message"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Targets (DESIGN.md)\n");
    let _ = writeln!(s, "| target | measured | met |");
    let _ = writeln!(s, "|---|---|---|");
    let rate = |scenario: &str, name: &str| {
        scenarios
            .get(scenario)
            .and_then(|rows| rows.iter().find(|r| r.name == name))
            .map(|r| r.rate)
    };
    let best_ours = |scenario: &str| scenarios.get(scenario).and_then(|r| best(r).0).map(|r| r.rate);
    let mut target = |what: &str, mine: Option<f64>, peer: Option<f64>, peer_name: &str, at_least: f64| {
        let (text, met) = match (mine, peer) {
            (Some(m), Some(p)) => (format!("{:.2}x {peer_name}", m / p), m / p >= at_least),
            _ => ("not measured".to_string(), false),
        };
        let _ = writeln!(s, "| {what} | {text} | {} |", if met { "yes" } else { "no" });
    };
    target(
        "A: 1P/1C at least kanal",
        best_ours("A_1p_1c_1KiB"),
        rate("A_1p_1c_1KiB", "kanal"),
        "kanal",
        1.0,
    );
    target(
        "B: 1P/10 subscribers at least tokio broadcast (lossless)",
        best_ours("B_1p_10s_1KiB"),
        rate("B_1p_10s_1KiB", "tokio broadcast"),
        "broadcast",
        1.0,
    );
    target(
        "C: 10P/10 group members at least kanal",
        best_ours("C_10p_10c_group_1KiB"),
        rate("C_10p_10c_group_1KiB", "kanal"),
        "kanal",
        1.0,
    );
    let best_vec = scenarios
        .get("D_batch100_1KiB")
        .and_then(|rows| best(rows).1)
        .map(|r| r.rate);
    target(
        "D: batches of 100 at least the best Vec channel",
        best_ours("D_batch100_1KiB"),
        best_vec,
        "best Vec channel",
        1.0,
    );
    // E: per-message cost of 100 MiB within 2x of 1 MiB (rates within 0.5x).
    target(
        "E: 100 MiB costs per message within 2x of 1 MiB",
        rate("E_1p_1c_100MiB", "tokio-memq recv"),
        rate("E_1p_1c_1MiB", "tokio-memq recv"),
        "of the 1 MiB rate",
        0.5,
    );
    for (scenario, label) in [
        ("G_serialized_json_small", "G: JSON small value within 20%"),
        ("G_serialized_bincode_small", "G: bincode small value within 20%"),
        ("G_serialized_json_1KiB", "G: JSON 1 KiB value within 20%"),
        ("G_serialized_bincode_1KiB", "G: bincode 1 KiB value within 20%"),
    ] {
        target(
            label,
            rate(scenario, "tokio-memq publish + recv_typed"),
            rate(scenario, "direct serializer"),
            "of the direct serializer's rate",
            1.0 / 1.2,
        );
    }
    if let Some(Value::Array(rows)) = latency {
        let get = |peer: &str, key: &str| {
            rows.iter()
                .find(|r| r["peer"] == peer)
                .and_then(|r| r[key].as_f64())
        };
        for key in ["p50_us", "p99_us"] {
            let (m, p) = (get("tokio-memq", key), get("tokio mpsc", key));
            let met = matches!((m, p), (Some(m), Some(p)) if m <= p);
            let text = match (m, p) {
                (Some(m), Some(p)) => format!("{m:.1} µs vs mpsc {p:.1} µs"),
                _ => "not measured".into(),
            };
            let _ = writeln!(
                s,
                "| F: {} no worse than tokio mpsc | {text} | {} |",
                &key[..3],
                if met { "yes" } else { "no" }
            );
        }
    }
    if let Some(Value::Array(rows)) = memory {
        let m = rows
            .iter()
            .find(|r| r["peer"] == "tokio-memq")
            .and_then(|r| r["bytes_per_message"].as_f64());
        let text = m.map_or("not measured".into(), |m| format!("{m:.1} bytes"));
        let met = m.is_some_and(|m| m <= 64.5);
        let _ = writeln!(
            s,
            "| H: at most 64 bytes per retained message | {text} | {} |",
            if met { "yes" } else { "no" }
        );
    }
    s
}

/// A horizontal bar chart of every scenario, each bar scaled to the
/// fastest implementation of its scenario; tokio-memq in its own colour.
fn svg(scenarios: &BTreeMap<String, Vec<Row>>) -> String {
    let bar = 18.0;
    let width = 900.0;
    let label_w = 300.0;
    let rows: usize = scenarios.values().map(|r| r.len() + 2).sum();
    let height = rows as f64 * bar + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">tokio-memq vs peers (bars scaled per scenario)</text>\n"
    );
    let mut y = 40.0;
    for (scenario, list) in scenarios {
        let max = list.iter().map(|r| r.rate).fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.0}\" font-weight=\"bold\">{scenario}</text>",
            y + 13.0
        );
        y += bar;
        for r in list {
            let w = if max > 0.0 {
                r.rate / max * (width - label_w - 110.0)
            } else {
                0.0
            };
            let colour = if ours(&r.name) { "#d9480f" } else { "#5c7cfa" };
            let _ = writeln!(
                s,
                "<text x=\"20\" y=\"{:.0}\">{}</text><rect x=\"{label_w}\" y=\"{:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{colour}\"/>\
                 <text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
                y + 13.0,
                r.name,
                y + 3.0,
                bar - 5.0,
                label_w + w + 5.0,
                y + 13.0,
                human(r.rate)
            );
            y += bar;
        }
        y += bar;
    }
    s.push_str("</svg>\n");
    s
}
