//! The seven cases of the benchmark, a file each. Each returns a table of
//! medians; `main` turns them into ratios and checks the targets.

mod burst;
mod growth;
mod hand_off;
mod json;
mod pairs;
mod threads;
mod zeroed;

use std::time::{Duration, Instant};

use crate::contenders::{with_global, Contender};
use crate::measure::{interleaved, Rounds};

pub use burst::{burst, child_main as burst_child};

/// Case 7's row labels and thread count, for the targets.
pub mod burst_rows {
    pub use super::burst::{IDLE_ROW as IDLE, THREADS};
}
pub use growth::vec_growth;
pub use hand_off::hand_off;
pub use json::json;
pub use pairs::pairs;
pub use threads::threads;
pub use zeroed::zeroed;

/// A table of medians: one row per size or variant, one column per contender.
pub struct Table {
    pub id: &'static str,
    pub title: String,
    pub unit: &'static str,
    /// The column every other column is divided by.
    pub reference: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Row>,
}

pub struct Row {
    pub label: String,
    pub values: Vec<f64>,
}

impl Table {
    pub(crate) fn new(
        id: &'static str,
        title: String,
        unit: &'static str,
        reference: Contender,
        columns: &[Contender],
    ) -> Self {
        Table {
            id,
            title,
            unit,
            reference: reference.name(),
            columns: columns.iter().map(|c| c.name()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, label: String, medians: Vec<(Contender, f64)>) {
        self.rows.push(Row {
            label,
            values: medians.into_iter().map(|(_, value)| value).collect(),
        });
    }

    /// The median of `column` in the row labelled `label`.
    pub fn value(&self, label: &str, column: &str) -> Option<f64> {
        let index = self.columns.iter().position(|c| *c == column)?;
        let row = self.rows.iter().find(|row| row.label == label)?;
        Some(row.values[index])
    }
}

/// How long the benchmark runs: the full run for the results, or a quick one
/// (seconds) that only proves it still builds and runs.
#[derive(Clone, Copy)]
pub struct Plan {
    pub quick: bool,
}

impl Plan {
    pub(crate) fn rounds(self, full: usize) -> Rounds {
        Rounds(if self.quick { 3 } else { full })
    }
    pub(crate) fn scale(self, full: usize) -> usize {
        if self.quick {
            (full / 20).max(1)
        } else {
            full
        }
    }
    pub fn small_sizes(self) -> Vec<usize> {
        if self.quick {
            vec![8, 64, 512]
        } else {
            vec![8, 16, 32, 64, 128, 256, 512]
        }
    }
    pub fn large_sizes(self) -> Vec<usize> {
        if self.quick {
            vec![4 << 10, 1 << 20]
        } else {
            vec![1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20]
        }
    }
}

pub fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

pub(crate) fn checked(block: *mut u8, what: &str) -> *mut u8 {
    if block.is_null() {
        eprintln!("bench: {what} returned NULL");
        std::process::abort();
    }
    block
}

/// The medians, in milliseconds, of `job` run with each contender as the
/// global allocator (everything `job` allocates is freed inside it).
pub(crate) fn global_allocator_ms(
    columns: &[Contender],
    rounds: Rounds,
    job: impl Fn(),
) -> Vec<(Contender, f64)> {
    interleaved(columns, rounds, |c| {
        with_global(c, || {
            let start = Instant::now();
            job();
            ms(start.elapsed())
        })
    })
}

pub(crate) fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

pub(crate) fn nanos(elapsed: Duration) -> f64 {
    elapsed.as_nanos() as f64
}
