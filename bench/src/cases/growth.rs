//! Case 2: a `Vec<u8>` grown by single pushes (the realloc path).

use std::hint::black_box;

use super::{global_allocator_ms, size_label, Plan, Table};
use crate::contenders::Contender;

/// Case 2: a `Vec<u8>` grown by single pushes (the realloc path).
pub fn vec_growth(plan: Plan) -> Table {
    use Contender::*;
    let columns = [PyAlloc, PyMemDirect, Naive, System, Mimalloc];
    let len = if plan.quick { 4 << 20 } else { 64 << 20 };
    let mut table = Table::new(
        "vec-growth",
        format!("2. Vec<u8> grown by pushes to {}", size_label(len)),
        "ms",
        System,
        &columns,
    );
    let medians = global_allocator_ms(&columns, plan.rounds(7), || {
        let mut bytes = Vec::new();
        for i in 0..len {
            bytes.push(i as u8);
        }
        black_box(&bytes);
    });
    table.push(size_label(len), medians);
    table
}
