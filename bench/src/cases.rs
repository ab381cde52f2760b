//! The six cases of the benchmark. Each returns a table of medians; `main`
//! turns them into ratios and checks the targets.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use pyo3_ffi as ffi;

use crate::contenders::{self, with_global, Contender, Workload};
use crate::measure::{self, interleaved, ns_per_op, Rounds};

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
    fn new(
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

    fn push(&mut self, label: String, medians: Vec<(Contender, f64)>) {
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
    fn rounds(self, full: usize) -> Rounds {
        Rounds(if self.quick { 3 } else { full })
    }
    fn scale(self, full: usize) -> usize {
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

fn checked(block: *mut u8, what: &str) -> *mut u8 {
    if block.is_null() {
        eprintln!("bench: {what} returned NULL");
        std::process::abort();
    }
    block
}

/// Case 1's unit of work: `live` blocks allocated, then all freed, `repeats`
/// times. With `live == 1` that is one pair at a time.
struct Pairs {
    layout: Layout,
    slots: Vec<*mut u8>,
    repeats: usize,
}

impl Pairs {
    fn new(size: usize, live: usize, repeats: usize) -> Self {
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
    let columns = [PyAlloc, PyAllocNoGil, PyMemDirect, Naive, System, Mimalloc];
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

/// The medians, in milliseconds, of `job` run with each contender as the
/// global allocator (everything `job` allocates is freed inside it).
fn global_allocator_ms(columns: &[Contender], rounds: Rounds, job: impl Fn()) -> Vec<(Contender, f64)> {
    interleaved(columns, rounds, |c| {
        with_global(c, || {
            let start = Instant::now();
            job();
            ms(start.elapsed())
        })
    })
}

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

/// Case 4: two threads with the GIL released, each doing case 1's batches.
/// The unit is wall-clock nanoseconds per pair per thread; lower is more
/// throughput.
pub fn threads(plan: Plan) -> Table {
    use Contender::*;
    let columns = [PyAllocNoGil, System, Mimalloc];
    let mut table = Table::new(
        "two-threads",
        "4. two threads, GIL released, alloc+free pairs in batches of 1000".into(),
        "ns per pair per thread",
        System,
        &columns,
    );
    let sizes = if plan.quick {
        vec![64, 4 << 10]
    } else {
        vec![16, 64, 256, 512, 4 << 10, 64 << 10]
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

/// A JSON document of about `target` bytes, the same on every run: an array
/// of records with strings, numbers, nested arrays and objects.
pub fn json_document(target: usize) -> String {
    let mut random = measure::SplitMix64(0x5eed);
    let mut out = String::with_capacity(target + 1024);
    out.push('[');
    let mut id = 0u64;
    while out.len() < target {
        if id > 0 {
            out.push(',');
        }
        let r = random.next();
        out.push_str(&format!(
            "{{\"id\":{id},\"name\":\"user-{:08x}\",\"email\":\"u{}@example.org\",\"score\":{:.4},\
             \"active\":{},\"tags\":[\"t{}\",\"t{}\",\"t{}\"],\"history\":[{},{},{},{},{}],\
             \"address\":{{\"city\":\"city-{}\",\"zip\":\"{:05}\"}}}}",
            r as u32,
            r % 100_000,
            (r % 10_000) as f64 / 7.0,
            r.is_multiple_of(2),
            r % 13,
            r % 17,
            r % 19,
            r % 1000,
            (r >> 10) % 1000,
            (r >> 20) % 1000,
            (r >> 30) % 1000,
            (r >> 40) % 1000,
            r % 500,
            r % 100_000,
        ));
        id += 1;
    }
    out.push(']');
    out
}

/// Case 5: parse a generated JSON document into `serde_json::Value` and write
/// it out again, with the GIL held.
pub fn json(plan: Plan) -> Table {
    use Contender::*;
    let columns = [PyAlloc, PyMemDirect, Naive, System, Mimalloc];
    let size = if plan.quick { 1 << 20 } else { 20_000_000 };
    let document = json_document(size);
    let mut table = Table::new(
        "json",
        format!(
            "5. serde_json: parse and re-serialise a {:.0} MB document (GIL held)",
            document.len() as f64 / 1e6
        ),
        "ms",
        System,
        &columns,
    );
    let medians = global_allocator_ms(&columns, plan.rounds(7), || {
        let value: serde_json::Value = serde_json::from_str(&document).expect("valid JSON");
        let text = serde_json::to_string(&value).expect("serialisable");
        // Floats may print shorter; the size stays within a few percent.
        assert!(
            text.len().abs_diff(document.len()) < document.len() / 20,
            "round trip keeps the text"
        );
    });
    table.push(format!("{:.0} MB", document.len() as f64 / 1e6), medians);
    table
}

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

fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

fn nanos(elapsed: Duration) -> f64 {
    elapsed.as_nanos() as f64
}
