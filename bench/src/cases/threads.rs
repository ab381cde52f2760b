//! Case 4: two threads with the GIL released, each doing case 1's batches.

use std::sync::Barrier;

use super::pairs::Pairs;
use super::{size_label, Plan, Table};
use crate::contenders::{self, Contender};
use crate::measure::interleaved;

/// Case 4: two threads with the GIL released, each doing case 1's batches.
/// The unit is wall-clock nanoseconds per pair per thread; lower is more
/// throughput.
pub fn threads(plan: Plan) -> Table {
    use Contender::*;
    let columns = [PyAllocNoGil, System, Mimalloc];
    let mut table = Table::new(
        "two-threads",
        "4. two threads, GIL released, alloc+free pairs in batches (1000 small or 100 large blocks)".into(),
        "ns per pair per thread",
        System,
        &columns,
    );
    let sizes = if plan.quick {
        vec![64, 4 << 10]
    } else {
        vec![
            16,
            64,
            128,
            256,
            512,
            1 << 10,
            4 << 10,
            64 << 10,
            256 << 10,
            1 << 20,
        ]
    };
    for size in sizes {
        let live = if size <= 512 { 1000 } else { 100 };
        let repeats = plan.scale(if size <= 512 { 100 } else { 20 });
        let medians = interleaved(&columns, plan.rounds(11), |c| {
            // The workers hold no GIL: they never attach to the interpreter.
            let barrier = Barrier::new(2);
            let times: Vec<f64> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut work = Pairs::new(size, live, repeats);
                            barrier.wait();
                            contenders::run(c, &mut work)
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().expect("worker ran"))
                    .collect()
            });
            times.into_iter().fold(0.0, f64::max)
        });
        table.push(size_label(size), medians);
    }
    table
}
