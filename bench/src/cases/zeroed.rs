//! Case 3: `alloc_zeroed` of large blocks (the naive forwarder zeroes by hand).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Instant;

use super::{checked, size_label, Plan, Table};
use crate::contenders::{self, Contender, Workload};
use crate::measure::{self, interleaved};

/// Case 3's unit of work: one zeroed block allocated and freed, five times
/// back to back; the median of the five. The first of them may pay for the
/// previous contender (a memset of the whole block leaves caches and TLB cold).
struct Zeroed(Layout);

impl Workload for Zeroed {
    /// Microseconds per alloc_zeroed+free.
    type Output = f64;
    fn run<A: GlobalAlloc>(&mut self, alloc: &A) -> f64 {
        let layout = self.0;
        let mut times = [0.0; 5];
        for time in &mut times {
            let start = Instant::now();
            // SAFETY: a valid non-zero layout; freed right after.
            unsafe {
                let block = checked(alloc.alloc_zeroed(layout), "alloc_zeroed");
                alloc.dealloc(black_box(block), layout);
            }
            *time = start.elapsed().as_nanos() as f64 / 1e3;
        }
        measure::median(&mut times)
    }
}

/// Case 3: `alloc_zeroed` of large blocks (the naive forwarder zeroes by hand).
pub fn zeroed(plan: Plan) -> Table {
    use Contender::*;
    let columns = [PyAlloc, PyMemDirect, Naive, System, Mimalloc];
    let mut table = Table::new(
        "alloc-zeroed",
        "3. alloc_zeroed + free of one large block".into(),
        "us",
        PyMemDirect,
        &columns,
    );
    let sizes: &[usize] = if plan.quick {
        &[64 << 20]
    } else {
        &[64 << 20, 1 << 30]
    };
    for &size in sizes {
        let mut work = Zeroed(Layout::from_size_align(size, 8).expect("valid layout"));
        let rounds = plan.rounds(if size > 64 << 20 { 3 } else { 11 });
        table.push(
            size_label(size),
            interleaved(&columns, rounds, |c| contenders::run(c, &mut work)),
        );
    }
    table
}
