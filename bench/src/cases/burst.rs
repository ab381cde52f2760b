//! Case 7: idle memory after a burst. 32 threads each allocate one 12 MiB
//! block, write every page, free it and sit idle (a worker pool between
//! jobs); the resident memory the process gained is read while they idle
//! and again after they exit. Each sample is a child process of this binary
//! with no interpreter (`--burst-child`), so no contender inherits
//! another's heap: pyalloc's private heap, glibc, and mimalloc preloaded
//! (`LD_PRELOAD`, Debian's `libmimalloc.so.2`) as the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::{Arc, Barrier};

use pyalloc::PyAlloc;

use super::{Plan, Row, Table};
use crate::measure::median;

pub const THREADS: usize = 32;
pub const BLOCK: usize = 12 << 20;
pub const IDLE_ROW: &str = "idle";
pub const EXITED_ROW: &str = "exited";

const PYALLOC: &str = "pyalloc (no GIL)";
const SYSTEM: &str = "system";
const MIMALLOC_PRELOADED: &str = "mimalloc (preloaded)";
const PRELOADED_MIMALLOC: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2",
    "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0",
];

/// Case 7: the medians of the children's growth, in MiB.
pub fn burst(plan: Plan) -> Table {
    let preloaded = PRELOADED_MIMALLOC
        .iter()
        .find(|path| std::path::Path::new(path).exists());
    let mut columns = vec![PYALLOC, SYSTEM];
    if preloaded.is_some() {
        columns.push(MIMALLOC_PRELOADED);
    } else {
        eprintln!("bench: case 7 without preloaded mimalloc (libmimalloc2.0 is not installed)");
    }
    let rounds = if plan.quick { 1 } else { 7 };
    let mut idle = vec![Vec::new(); columns.len()];
    let mut exited = vec![Vec::new(); columns.len()];
    for round in 0..rounds {
        // A different contender first each round.
        for offset in 0..columns.len() {
            let index = (round + offset) % columns.len();
            let (allocator, preload) = match columns[index] {
                PYALLOC => ("pyalloc", None),
                SYSTEM => ("system", None),
                _ => ("system", preloaded),
            };
            let (idle_mib, exited_mib) = child(allocator, preload.copied());
            idle[index].push(idle_mib);
            exited[index].push(exited_mib);
        }
    }
    let mut table = Table {
        id: "burst",
        title: format!(
            "7. idle memory: {THREADS} threads allocate, write and free one {} MiB block each, then idle (child processes, no interpreter)",
            BLOCK >> 20
        ),
        unit: "MiB resident memory gained",
        reference: SYSTEM,
        columns,
        rows: Vec::new(),
    };
    for (label, mut samples) in [(IDLE_ROW, idle), (EXITED_ROW, exited)] {
        table.rows.push(Row {
            label: label.into(),
            values: samples.iter_mut().map(|values| median(values)).collect(),
        });
    }
    table
}

/// One sample: this binary as `--burst-child`, which prints the MiB gained
/// while idle and after exit.
fn child(allocator: &str, preload: Option<&str>) -> (f64, f64) {
    let mut command = Command::new(std::env::current_exe().expect("the bench binary"));
    command
        .args(["--burst-child", allocator])
        .env_remove("LD_PRELOAD");
    if let Some(library) = preload {
        command.env("LD_PRELOAD", library);
    }
    let output = command.output().expect("the burst child runs");
    assert!(output.status.success(), "the burst child failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let values: Vec<f64> = text
        .split_whitespace()
        .map(|word| word.parse().expect("two numbers"))
        .collect();
    assert_eq!(values.len(), 2, "the burst child printed {text:?}");
    (values[0], values[1])
}

/// The child: runs the burst with `allocator` ("pyalloc" or "system") and
/// prints the MiB gained with the threads idle, then after they exit.
pub fn child_main(allocator: &str) {
    let before = resident();
    let ready = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let pyalloc = match allocator {
        "pyalloc" => true,
        "system" => false,
        other => panic!("no such burst allocator: {other}"),
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (ready, release) = (ready.clone(), release.clone());
            std::thread::spawn(move || {
                if pyalloc {
                    one_block(&PyAlloc);
                } else {
                    one_block(&System);
                }
                ready.wait();
                release.wait();
            })
        })
        .collect();
    ready.wait();
    let idle = resident();
    release.wait();
    for worker in workers {
        worker.join().expect("worker ran");
    }
    let exited = resident();
    let mib = |after: usize| after.saturating_sub(before) as f64 / (1 << 20) as f64;
    println!("{:.1} {:.1}", mib(idle), mib(exited));
}

fn one_block<A: GlobalAlloc>(alloc: &A) {
    let layout = Layout::from_size_align(BLOCK, 8).expect("valid layout");
    // SAFETY: a non-zero layout; the block is written within its size and
    // freed once, with the same layout.
    unsafe {
        let block = super::checked(alloc.alloc(layout), "burst alloc");
        for page in (0..BLOCK).step_by(4096) {
            block.add(page).write_volatile(1);
        }
        alloc.dealloc(block, layout);
    }
}

/// Resident bytes, from /proc/self/statm.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}
