//! Timing: every contender measured in the same rounds, in a fresh random
//! order each round (seeded, so runs are comparable) so that none always runs
//! first or after the same neighbour, and the median of the rounds kept.

use std::sync::mpsc;
use std::time::Instant;

use pyo3_ffi as ffi;

use crate::contenders::Contender;

/// How many rounds each measurement takes.
#[derive(Clone, Copy)]
pub struct Rounds(pub usize);

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    assert!(!values.is_empty(), "a median needs at least one value");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if !values.len().is_multiple_of(2) {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Runs `sample` for every contender `rounds` times, interleaved, and returns
/// each contender's median. `sample` returns one measurement (any unit).
pub fn interleaved(
    contenders: &[Contender],
    Rounds(rounds): Rounds,
    mut sample: impl FnMut(Contender) -> f64,
) -> Vec<(Contender, f64)> {
    let mut samples = vec![Vec::with_capacity(rounds); contenders.len()];
    let mut order: Vec<usize> = (0..contenders.len()).collect();
    let mut random = SplitMix64(0x05ee_d0fa_110c);
    for _ in 0..rounds {
        // A fresh order each round: a contender that leaves the caches and
        // TLB cold (a 64 MiB memset) must not always precede the same one.
        for i in (1..order.len()).rev() {
            order.swap(i, (random.next() % (i as u64 + 1)) as usize);
        }
        for &index in &order {
            let contender = contenders[index];
            samples[index].push(gil_state_for(contender, || sample(contender)));
        }
    }
    contenders
        .iter()
        .zip(&mut samples)
        .map(|(&contender, values)| (contender, median(values)))
        .collect()
}

/// Runs `job` with the GIL as `contender` needs it: the bench thread holds
/// the GIL, and releases it for the contenders that run without it.
pub fn gil_state_for<R>(contender: Contender, job: impl FnOnce() -> R) -> R {
    if !contender.releases_gil() {
        return job();
    }
    // SAFETY: the bench thread holds the GIL here (it takes it at start-up
    // and only releases it inside this function), and restores it below.
    unsafe {
        let state = ffi::PyEval_SaveThread();
        let result = if contender.gil_busy() {
            with_gil_held_elsewhere(job)
        } else {
            job()
        };
        ffi::PyEval_RestoreThread(state);
        result
    }
}

/// Runs `job` while a helper thread holds the GIL, parked (no CPU) until
/// `job` is done. The calling thread must not hold the GIL.
fn with_gil_held_elsewhere<R>(job: impl FnOnce() -> R) -> R {
    let (held_tx, held_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // SAFETY: a new thread with no thread state; PyGILState_Ensure
            // makes one and takes the GIL, Release gives both back.
            unsafe {
                let gil = ffi::PyGILState_Ensure();
                held_tx.send(()).expect("the bench thread waits");
                let _ = done_rx.recv();
                ffi::PyGILState_Release(gil);
            }
        });
        held_rx.recv().expect("the helper took the GIL");
        let result = job();
        done_tx.send(()).expect("the helper waits");
        result
    })
}

/// Nanoseconds `job` takes, divided by `ops`.
pub fn ns_per_op(ops: usize, job: impl FnOnce()) -> f64 {
    let start = Instant::now();
    job();
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// A small seeded generator (SplitMix64): round orders, generated documents.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
