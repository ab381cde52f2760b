//! Case 6: a Rust-built buffer handed to C, against a copy.

use std::hint::black_box;
use std::ptr;
use std::time::Instant;

use pyo3_ffi as ffi;

use super::{checked, nanos, size_label, Plan, Row, Table};
use crate::contenders::{with_global, Contender};
use crate::measure;

/// Case 6: a Rust-built buffer handed to C (`into_pymem`, then `PyMem_Free`)
/// against copying it into a fresh `PyMem_Malloc` block.
pub fn hand_off(plan: Plan) -> Table {
    let sizes: &[usize] = if plan.quick {
        &[1 << 10, 1 << 20]
    } else {
        &[1 << 10, 1 << 20, 100 << 20]
    };
    let mut table = Table {
        id: "hand-off",
        title: "6. a Vec<u8> given to C for PyMem_Free, against a copy into PyMem_Malloc".into(),
        unit: "ns",
        reference: "copy",
        columns: vec![
            "hand-off",
            "copy",
            "PyMem_Free after hand-off",
            "copy's malloc+free",
            "16 B hand-off after the same fill",
            "empty timed interval",
        ],
        rows: Vec::new(),
    };
    for &len in sizes {
        let rounds = if len > 1 << 20 {
            plan.rounds(11)
        } else {
            plan.rounds(101)
        };
        let mut columns: [Vec<f64>; 6] = Default::default();
        for _ in 0..rounds.0 {
            let (hand_off, free, timer) = hand_off_once(len, false);
            let (copy, copy_free) = copy_once(len);
            let (control, _, _) = hand_off_once(len, true);
            for (column, value) in columns
                .iter_mut()
                .zip([hand_off, copy, free, copy_free, control, timer])
            {
                column.push(value);
            }
        }
        table.rows.push(Row {
            label: size_label(len),
            values: columns.iter_mut().map(|column| measure::median(column)).collect(),
        });
    }
    table
}

/// Fills a `len`-byte vector, then hands a vector to C and frees it there:
/// the filled one, or (`control`) a 16-byte one made before the fill, which
/// shows what the same hand-off costs in the same cache state at no size.
/// Returns the nanoseconds of the hand-off, of C's `PyMem_Free`, and of an
/// empty interval timed just before the hand-off (the timer's cold cost).
fn hand_off_once(len: usize, control: bool) -> (f64, f64, f64) {
    with_global(Contender::PyAlloc, || {
        let small = control.then(|| vec![0x5au8; 16]);
        let filled = vec![0x5au8; len];
        let (handed, kept) = match small {
            Some(small) => (small, Some(filled)),
            None => (filled, None),
        };
        let address = handed.as_ptr() as usize;
        let rehomed = pyalloc::stats().rehomed;
        // Filling a large buffer evicts the caches; time nothing first, so
        // that the timer's own cold start is not charged to the hand-off.
        let start = Instant::now();
        let timer_alone = start.elapsed();
        let start = Instant::now();
        let block = pyalloc::into_pymem(handed).expect("the bench thread holds the GIL");
        let (block, _) = block.into_raw();
        let hand_off = start.elapsed();
        // The point of the case: no copy was made.
        assert_eq!(block as usize, address, "into_pymem handed over the same buffer");
        assert_eq!(pyalloc::stats().rehomed, rehomed, "into_pymem did not copy");
        let start = Instant::now();
        // SAFETY: into_pymem gave C a PyMem block; the GIL is held.
        unsafe { ffi::PyMem_Free(block.cast()) };
        let free = start.elapsed();
        drop(kept);
        (nanos(hand_off), nanos(free), nanos(timer_alone))
    })
}

/// Returns the nanoseconds of the copy into a fresh PyMem block, and of the
/// frees the copy adds (the copy's and the original's).
fn copy_once(len: usize) -> (f64, f64) {
    with_global(Contender::PyAlloc, || {
        let bytes = vec![0x5au8; len];
        let start = Instant::now();
        // SAFETY: the GIL is held; the fresh block has room for `len` bytes
        // and does not overlap the vector.
        let block = unsafe {
            let block = checked(ffi::PyMem_Malloc(len).cast(), "PyMem_Malloc");
            ptr::copy_nonoverlapping(bytes.as_ptr(), block, len);
            block
        };
        let copy = start.elapsed();
        let start = Instant::now();
        drop(black_box(bytes));
        // SAFETY: a PyMem block from just above; the GIL is held.
        unsafe { ffi::PyMem_Free(block.cast()) };
        (nanos(copy), nanos(start.elapsed()))
    })
}
