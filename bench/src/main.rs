//! pyalloc's benchmark: pyalloc against bare `PyMem_*` calls, the
//! naive forwarder, the system allocator and mimalloc, in one process with an
//! embedded interpreter, the contenders interleaved round by round. Prints
//! each case's medians with their ratio to the case's reference, checks the
//! targets, and writes everything as JSON for `bench/report.py`.
//!
//! `pyalloc-bench [--quick] [--json PATH] [--case N]` (`--case` runs one
//! case, to profile it; case 7 runs this binary again as
//! `--burst-child ALLOCATOR`, one child process per sample); `scripts/bench.sh` runs it for
//! every CPython it reports on. `--pair-loop PAIRS SIZE [--gil]` runs
//! pyalloc's pair alone, for `scripts/count-instructions.sh`. Timing never fails the program: a missed
//! target is printed as missed. It fails only when a case goes wrong (a NULL,
//! a hand-off that copied).

#![deny(unsafe_op_in_unsafe_fn)]

mod cases;
mod contenders;
mod measure;

use std::ffi::CStr;
use std::fmt::Write as _;

use pyo3_ffi as ffi;
use serde_json::{json, Value};

use cases::{Plan, Table};

struct Target {
    name: String,
    measured: f64,
    limit: &'static str,
    met: bool,
    detail: String,
}

fn main() {
    let mut quick = false;
    let mut json_path = None;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--json" => json_path = Some(args.next().expect("--json takes a path")),
            "--case" => only = Some(args.next().expect("--case takes a case number, 1 to 7")),
            "--pair-loop" => {
                let mut number = || args.next().and_then(|arg| arg.parse().ok());
                let (Some(pairs), Some(size)) = (number(), number()) else {
                    eprintln!("usage: pyalloc-bench --pair-loop PAIRS SIZE [--gil]");
                    std::process::exit(2);
                };
                pair_loop(pairs, size, args.next().as_deref() == Some("--gil"));
                return;
            }
            "--burst-child" => {
                // No interpreter: the burst's threads are plain threads.
                cases::burst_child(&args.next().expect("--burst-child takes an allocator"));
                return;
            }
            other => {
                eprintln!(
                    "usage: pyalloc-bench [--quick] [--json PATH] [--case N] (unknown argument {other:?})"
                );
                std::process::exit(2);
            }
        }
    }
    let plan = Plan { quick };

    // SAFETY: initialised once, on this thread, which keeps the GIL except
    // where a contender runs without it (`measure::gil_state_for`).
    unsafe { ffi::Py_InitializeEx(0) };
    // SAFETY: Py_GetVersion returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }
        .to_string_lossy()
        .into_owned();
    let python = version.split_whitespace().next().unwrap_or("?").to_owned();
    let allocator = std::env::var("PYTHONMALLOC").unwrap_or_else(|_| "pymalloc".into());
    println!(
        "pyalloc-bench{}: CPython {python} ({allocator}), {}",
        if quick { " --quick" } else { "" },
        cpu_model()
    );

    let mut tables = Vec::new();
    for (number, run) in (1..).zip([
        cases::pairs as fn(Plan) -> Vec<Table>,
        |plan| vec![cases::vec_growth(plan)],
        |plan| vec![cases::zeroed(plan)],
        |plan| vec![cases::threads(plan)],
        |plan| vec![cases::json(plan)],
        |plan| vec![cases::hand_off(plan)],
        |plan| vec![cases::burst(plan)],
    ]) {
        if only.as_ref().is_some_and(|only| *only != number.to_string()) {
            continue;
        }
        for table in run(plan) {
            print!("{}", render(&table));
            tables.push(table);
        }
    }

    if only.is_some() {
        // One case alone is for profiling: the targets need them all.
        return;
    }
    // Quick mode measures too little to judge anything: no verdicts.
    let targets = if quick { Vec::new() } else { targets(&tables) };
    if !quick {
        println!("\nTargets (CPython {python}):");
    }
    for target in &targets {
        println!(
            "  {:<4} {}: {} (limit {}){}",
            if target.met { "met" } else { "MISSED" },
            target.name,
            format_number(target.measured),
            target.limit,
            if target.detail.is_empty() {
                String::new()
            } else {
                format!("; {}", target.detail)
            },
        );
    }

    if let Some(path) = json_path {
        let document = to_json(&python, &allocator, quick, &tables, &targets);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&document).expect("serialisable"),
        )
        .unwrap_or_else(|error| panic!("cannot write {path}: {error}"));
        println!("wrote {path}");
    }
}

fn ratio(table: &Table, value: f64, row: &cases::Row) -> f64 {
    let reference = table
        .columns
        .iter()
        .position(|c| *c == table.reference)
        .expect("reference column");
    value / row.values[reference]
}

fn render(table: &Table) -> String {
    let mut out = format!(
        "\n{} [{}; ratio to {}]\n",
        table.title, table.unit, table.reference
    );
    let _ = write!(out, "  {:<8}", "");
    for column in &table.columns {
        let _ = write!(out, " {column:>22}");
    }
    out.push('\n');
    for row in &table.rows {
        let _ = write!(out, "  {:<8}", row.label);
        for &value in &row.values {
            let cell = format!("{} ({:.2}x)", format_number(value), ratio(table, value, row));
            let _ = write!(out, " {cell:>22}");
        }
        out.push('\n');
    }
    out
}

fn format_number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn find<'a>(tables: &'a [Table], id: &str) -> &'a Table {
    tables.iter().find(|t| t.id == id).expect("every case ran")
}

/// The larger of two labelled values (the first on a tie).
fn larger(worst: (f64, String), next: (f64, String)) -> (f64, String) {
    if next.0 > worst.0 {
        next
    } else {
        worst
    }
}

/// The worst ratio of `column` to `reference` over the rows that `keep`.
fn worst_ratio(table: &Table, column: &str, reference: &str, keep: impl Fn(&str) -> bool) -> (f64, String) {
    table
        .rows
        .iter()
        .filter(|row| keep(&row.label))
        .map(|row| {
            let value = table.value(&row.label, column).expect("column");
            let base = table.value(&row.label, reference).expect("reference");
            (value / base, row.label.clone())
        })
        .fold((f64::MIN, String::new()), larger)
}

/// The bytes a row label such as "128 B", "4 KiB" or "1 MiB" names.
fn label_bytes(label: &str) -> usize {
    let (number, unit) = label.split_once(' ').expect("a size label");
    let number: usize = number.parse().expect("a whole number");
    number
        * match unit {
            "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => panic!("no such unit: {other}"),
        }
}

/// The GIL-less targets: pyalloc's private heap against the system
/// allocator, no slower at any size, and at least 1.5 times its throughput
/// in batches from 128 B to 1 MiB.
fn gil_less_targets(tables: &[Table], targets: &mut Vec<Target>) {
    for (id, case, column) in [
        ("pairs-batch", "case 1 no GIL, batches", "pyalloc (no GIL)"),
        ("pairs-single", "case 1 no GIL, one at a time", "pyalloc (no GIL)"),
        ("two-threads", "case 4 two threads", "pyalloc (no GIL)"),
    ] {
        let table = find(tables, id);
        let (ratio, at) = worst_ratio(table, column, "system", |_| true);
        targets.push(Target {
            name: format!("{case}: pyalloc / system, every size"),
            measured: ratio,
            limit: "<= 1.0",
            met: ratio <= 1.0,
            detail: format!("worst at {at}"),
        });
        if id == "pairs-single" {
            continue;
        }
        let in_range = |label: &str| (128..=1 << 20).contains(&label_bytes(label));
        let (ratio, at) = worst_ratio(table, column, "system", in_range);
        targets.push(Target {
            name: format!("{case}: system / pyalloc (throughput), 128 B to 1 MiB"),
            measured: 1.0 / ratio,
            limit: ">= 1.5",
            met: 1.0 / ratio >= 1.5,
            detail: format!("worst at {at}"),
        });
    }
}

/// Idle memory after case 7's burst: pyalloc's private heap gains no more
/// than glibc's median in the same run, and an idle thread keeps at most
/// 1 MiB.
fn burst_targets(tables: &[Table], targets: &mut Vec<Target>) {
    let burst = find(tables, "burst");
    let row = cases::burst_rows::IDLE;
    let pyalloc = burst.value(row, "pyalloc (no GIL)").expect("pyalloc column");
    let system = burst.value(row, "system").expect("system column");
    targets.push(Target {
        name: "case 7 burst, threads idle: pyalloc / system (resident memory gained)".into(),
        measured: pyalloc / system,
        limit: "<= 1.0",
        met: pyalloc <= system,
        detail: format!("{pyalloc:.1} MiB against {system:.1} MiB"),
    });
    let per_thread = pyalloc / cases::burst_rows::THREADS as f64;
    targets.push(Target {
        name: "case 7 burst, threads idle: MiB kept per idle thread by pyalloc".into(),
        measured: per_thread,
        limit: "<= 1.0",
        met: per_thread <= 1.0,
        detail: String::new(),
    });
}

fn targets(tables: &[Table]) -> Vec<Target> {
    let small = |label: &str| label.ends_with(" B");
    let mut targets = Vec::new();
    for (id, mode) in [("pairs-batch", "batches"), ("pairs-single", "one at a time")] {
        let table = find(tables, id);
        for (reference, limit, met) in [
            // Issue 17: the smallest exact design, in C (bench/csrc).
            ("c-model", "<= 1.10", (|ratio| ratio <= 1.10) as fn(f64) -> bool),
            ("pymem-direct", "<= 1.25", |ratio| ratio <= 1.25),
            ("system", "< 1.0", |ratio| ratio < 1.0),
        ] {
            let (ratio, at) = worst_ratio(table, "pyalloc", reference, small);
            targets.push(Target {
                name: format!("case 1 {mode} <= 512 B: pyalloc / {reference}"),
                measured: ratio,
                limit,
                met: met(ratio),
                detail: format!("worst at {at}"),
            });
        }
    }
    let zeroed = find(tables, "alloc-zeroed");
    let label = zeroed.rows[0].label.clone();
    let speedup =
        zeroed.value(&label, "naive").expect("naive") / zeroed.value(&label, "pyalloc").expect("pyalloc");
    targets.push(Target {
        name: "case 3 alloc_zeroed 64 MiB: naive / pyalloc".into(),
        measured: speedup,
        limit: ">= 1000",
        met: speedup >= 1000.0,
        detail: String::new(),
    });
    gil_less_targets(tables, &mut targets);
    let json = find(tables, "json");
    let (json_ratio, _) = worst_ratio(json, "pyalloc", "system", |_| true);
    targets.push(Target {
        name: "case 5 serde_json: pyalloc / system".into(),
        measured: json_ratio,
        limit: "<= 1.0",
        met: json_ratio <= 1.0,
        detail: String::new(),
    });
    burst_targets(tables, &mut targets);
    let hand_off = find(tables, "hand-off");
    let (slowest, at) = hand_off
        .rows
        .iter()
        .map(|row| (row.values[0], row.label.clone()))
        .fold((f64::MIN, String::new()), larger);
    targets.push(Target {
        name: "case 6 hand-off, ns at the slowest size".into(),
        measured: slowest,
        limit: "< 1000",
        met: slowest < 1000.0,
        detail: format!("at {at}"),
    });
    targets
}

fn to_json(python: &str, allocator: &str, quick: bool, tables: &[Table], targets: &[Target]) -> Value {
    json!({
        "python": python,
        "allocator": allocator,
        "quick": quick,
        "date": command_output("date", &["-u", "+%Y-%m-%d"]),
        "machine": {
            "cpu": cpu_model(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": command_output("uname", &["-sr"]),
            "rustc": command_output("rustc", &["--version"]),
        },
        "tables": tables.iter().map(|table| json!({
            "id": table.id,
            "title": table.title,
            "unit": table.unit,
            "reference": table.reference,
            "columns": table.columns,
            "rows": table.rows.iter().map(|row| json!({
                "label": row.label,
                "values": row.values,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "targets": targets.iter().map(|target| json!({
            "name": target.name,
            "measured": target.measured,
            "limit": target.limit,
            "met": target.met,
            "detail": target.detail,
        })).collect::<Vec<_>>(),
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// `--pair-loop PAIRS SIZE [--gil]`: `PAIRS` alloc+free pairs of `SIZE`
/// bytes through `pyalloc::PyAlloc` alone, the GIL held or released, for
/// an instruction count (`scripts/count-instructions.sh`: the difference of
/// two counts, so that start-up cancels out). Not timed.
fn pair_loop(pairs: usize, size: usize, gil: bool) {
    use std::alloc::Layout;
    let layout = Layout::from_size_align(size.max(1), 8).expect("a size below isize::MAX");
    // SAFETY: initialised once, on this thread, which keeps the GIL unless
    // `gil` is false (released below, taken back before the end).
    unsafe { ffi::Py_InitializeEx(0) };
    // Under the GIL first: it confirms the quick "not attached" read.
    pairs_of(layout, 1);
    // SAFETY: this thread holds the GIL; it takes it back below.
    let saved = (!gil).then(|| unsafe { ffi::PyEval_SaveThread() });
    pairs_of(layout, pairs);
    if let Some(saved) = saved {
        // SAFETY: the state this thread released above.
        unsafe { ffi::PyEval_RestoreThread(saved) };
    }
}

/// `pairs` alloc+free pairs of `layout` through `PyAlloc`, in one loop as
/// case 1 runs them (`cases/pairs.rs`), so that they inline alike.
#[inline(never)]
fn pairs_of(layout: std::alloc::Layout, pairs: usize) {
    use std::alloc::GlobalAlloc;
    for _ in 0..pairs {
        // SAFETY: a block of `layout` from PyAlloc, freed by it with the
        // same layout (NULL is checked: out of memory is a failed run).
        unsafe {
            let block = pyalloc::PyAlloc.alloc(layout);
            assert!(!block.is_null(), "out of memory");
            pyalloc::PyAlloc.dealloc(std::hint::black_box(block), layout);
        }
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}
