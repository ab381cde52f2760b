//! Case 1: alloc+free pairs, many live at once and one at a time.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr;

use super::{checked, size_label, Plan, Table};
use crate::contenders::{self, Contender, Workload};
use crate::measure::{interleaved, ns_per_op};

/// Case 1's unit of work: `live` blocks allocated, then all freed, `repeats`
/// times. With `live == 1` that is one pair at a time.
pub(super) struct Pairs {
    layout: Layout,
    slots: Vec<*mut u8>,
    repeats: usize,
}

impl Pairs {
    pub(super) fn new(size: usize, live: usize, repeats: usize) -> Self {
        Pairs {
            layout: Layout::from_size_align(size, 8).expect("valid layout"),
            slots: vec![ptr::null_mut(); live],
            repeats,
        }
    }
    fn pairs(&self) -> usize {
        self.slots.len() * self.repeats
    }
}

impl Workload for Pairs {
    /// Nanoseconds per alloc+free pair.
    type Output = f64;
    fn run<A: GlobalAlloc>(&mut self, alloc: &A) -> f64 {
        let (layout, repeats, pairs) = (self.layout, self.repeats, self.pairs());
        let slots = &mut self.slots;
        ns_per_op(pairs, || {
            for _ in 0..repeats {
                for slot in slots.iter_mut() {
                    // SAFETY: a valid non-zero layout.
                    *slot = checked(unsafe { alloc.alloc(layout) }, "alloc");
                }
                for slot in slots.iter() {
                    // SAFETY: allocated just above with this layout.
                    unsafe { alloc.dealloc(black_box(*slot), layout) };
                }
            }
        })
    }
}

/// Case 1: alloc+free pairs, many live at once and one at a time.
pub fn pairs(plan: Plan) -> Vec<Table> {
    use Contender::*;
    contenders::check_c_model();
    let columns = Contender::ALL;
    let mut batch = Table::new(
        "pairs-batch",
        "1. alloc+free pairs, many live at once (1000 small or 100 large blocks)".into(),
        "ns per pair",
        PyMemDirect,
        &columns,
    );
    let mut single = Table::new(
        "pairs-single",
        "1. alloc+free pairs, one at a time".into(),
        "ns per pair",
        PyMemDirect,
        &columns,
    );
    let small = plan.small_sizes();
    for size in small.iter().copied().chain(plan.large_sizes()) {
        let (live, repeats) = if size <= 512 { (1000, 100) } else { (100, 10) };
        let mut work = Pairs::new(size, live, plan.scale(repeats));
        batch.push(
            size_label(size),
            interleaved(&columns, plan.rounds(21), |c| contenders::run(c, &mut work)),
        );
        let mut work = Pairs::new(size, 1, plan.scale(if size <= 512 { 100_000 } else { 10_000 }));
        single.push(
            size_label(size),
            interleaved(&columns, plan.rounds(21), |c| contenders::run(c, &mut work)),
        );
    }
    vec![batch, single]
}
