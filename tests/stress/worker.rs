//! One stress thread: random operations over the shared pool, each checked.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::CString;
use std::sync::Mutex;

use pyalloc::{into_pymem, vec_from_pymem, PyAlloc};
use pyo3_ffi as ffi;

use crate::blocks::{byte, fill, intact, Block, Kind, Rng};
use crate::common;

/// The most blocks the pool holds; a push beyond it frees a random one.
const POOL_LIMIT: usize = 400;

pub struct Worker<'a> {
    pub rng: Rng,
    pub pool: &'a Mutex<Vec<Block>>,
    /// This thread's Python thread state while it does not hold the GIL.
    pub detached: Option<*mut ffi::PyThreadState>,
    pub seed: u64,
}

impl Worker<'_> {
    fn fail(&self, what: String) -> ! {
        panic!(
            "stress failure (replay with PYALLOC_STRESS_SEED={}): {what}",
            self.seed
        );
    }

    pub fn holds_gil(&self) -> bool {
        self.detached.is_none()
    }

    /// Takes or releases the GIL with this thread's one thread state (made
    /// in `run_stress` before any operation, see there).
    pub fn toggle_gil(&mut self) {
        // SAFETY: `detached` is this thread's own thread state, saved by
        // PyEval_SaveThread; restore and save alternate.
        match self.detached.take() {
            Some(tstate) => unsafe { ffi::PyEval_RestoreThread(tstate) },
            None => self.detached = Some(unsafe { ffi::PyEval_SaveThread() }),
        }
        if self.holds_gil() != pyalloc::holds_main_gil() {
            self.fail(format!(
                "pyalloc disagrees about the GIL (held: {})",
                self.holds_gil()
            ));
        }
    }

    fn push(&mut self, block: Block) {
        let mut pool = self.pool.lock().expect("not poisoned");
        if pool.len() < POOL_LIMIT {
            pool.push(block);
            return;
        }
        let victim = self.rng.below(pool.len());
        let old = std::mem::replace(&mut pool[victim], block);
        drop(pool);
        self.release(old);
    }

    fn take(&mut self) -> Option<Block> {
        let mut pool = self.pool.lock().expect("not poisoned");
        if pool.is_empty() {
            return None;
        }
        let index = self.rng.below(pool.len());
        Some(pool.swap_remove(index))
    }

    pub fn check(&self, block: &Block, when: &str) {
        if !intact(block.ptr as *const u8, block.len, block.seed) {
            self.fail(format!("{when}: the contents of {block:?} changed"));
        }
    }

    /// Checks and frees a block the way its kind allows on this thread.
    pub fn release(&mut self, block: Block) {
        self.check(&block, "before free");
        // SAFETY: each block is live, owned here, and freed once by the API
        // that its kind allows.
        unsafe {
            match block.kind {
                Kind::Rust { align } => PyAlloc.dealloc(
                    block.ptr as *mut u8,
                    Layout::from_size_align_unchecked(block.len, align),
                ),
                Kind::CApi => pyalloc::pyalloc_free(block.ptr as *mut _),
                Kind::PyMem if self.holds_gil() => ffi::PyMem_Free(block.ptr as *mut _),
                Kind::PyMem => pyalloc::pyalloc_free(block.ptr as *mut _),
                Kind::Vec(bytes) => drop(bytes),
            }
        }
    }

    /// One random operation.
    pub fn step(&mut self) {
        let seed = self.rng.next() as u8;
        match self.rng.below(16) {
            0..=2 => self.allocate_rust(seed),
            3 => self.allocate_c_api(seed),
            4 if self.holds_gil() => self.allocate_pymem_from_c(seed),
            5 => self.build_vec(seed),
            6..=8 => {
                if let Some(block) = self.take() {
                    self.resize(block, seed);
                }
            }
            9..=11 => {
                if let Some(block) = self.take() {
                    self.release(block);
                }
            }
            12 => {
                if let Some(block) = self.take() {
                    self.hand_over(block);
                }
            }
            13 => self.toggle_gil(),
            14 if self.holds_gil() => {
                pyalloc::collect();
            }
            15 if self.holds_gil() && self.rng.below(8) == 0 => self.switch_tracemalloc(),
            _ => {}
        }
    }

    /// Fills a new block of `kind` with the pattern and adds it to the pool.
    fn add(&mut self, kind: Kind, ptr: *mut u8, len: usize, seed: u8) {
        fill(ptr, len, seed);
        self.push(Block {
            kind,
            ptr: ptr as usize,
            len,
            seed,
        });
    }

    /// A Rust layout of random size and alignment from `PyAlloc`, zeroed or not.
    fn allocate_rust(&mut self, seed: u8) {
        let align = 1 << self.rng.below(13);
        let len = self.rng.size(1);
        let layout = Layout::from_size_align(len, align).expect("valid");
        let zeroed = self.rng.below(2) == 0;
        // SAFETY: non-zero size; released later with the same layout.
        let ptr = unsafe {
            if zeroed {
                PyAlloc.alloc_zeroed(layout)
            } else {
                PyAlloc.alloc(layout)
            }
        };
        if ptr.is_null() || ptr as usize % align != 0 {
            self.fail(format!("alloc {layout:?} gave {ptr:?}"));
        }
        // SAFETY: `len` bytes were just allocated.
        if zeroed && (0..len).any(|i| unsafe { *ptr.add(i) } != 0) {
            self.fail(format!("alloc_zeroed {layout:?} is not zero"));
        }
        self.add(Kind::Rust { align }, ptr, len, seed);
    }

    /// A block from `pyalloc_malloc` or `pyalloc_calloc`.
    fn allocate_c_api(&mut self, seed: u8) {
        let len = self.rng.size(0);
        let ptr = if self.rng.below(2) == 0 {
            pyalloc::pyalloc_malloc(len)
        } else {
            pyalloc::pyalloc_calloc(1, len)
        } as *mut u8;
        if ptr.is_null() {
            self.fail(format!("pyalloc_malloc({len}) gave NULL"));
        }
        self.add(Kind::CApi, ptr, len, seed);
    }

    /// C's own `PyMem_Malloc` block (the GIL is held).
    fn allocate_pymem_from_c(&mut self, seed: u8) {
        let len = self.rng.size(0);
        // SAFETY: GIL held.
        let ptr = unsafe { ffi::PyMem_Malloc(len.max(1)) } as *mut u8;
        if ptr.is_null() {
            self.fail(format!("PyMem_Malloc({len}) gave NULL"));
        }
        self.add(Kind::PyMem, ptr, len, seed);
    }

    /// A `Vec<u8>` grown by Rust's own growth policy.
    fn build_vec(&mut self, seed: u8) {
        let len = self.rng.size(0);
        let mut bytes = Vec::new();
        bytes.extend((0..len).map(|i| byte(seed, i)));
        let ptr = bytes.as_ptr() as usize;
        self.push(Block {
            kind: Kind::Vec(bytes),
            ptr,
            len,
            seed,
        });
    }

    /// Starts or stops tracemalloc (the GIL is held).
    fn switch_tracemalloc(&mut self) {
        let code = if self.rng.below(2) == 0 { "start" } else { "stop" };
        let source = CString::new(format!("import tracemalloc; tracemalloc.{code}()")).expect("no NUL");
        // SAFETY: GIL held; the source is a valid C string.
        if unsafe { ffi::PyRun_SimpleString(source.as_ptr()) } != 0 {
            self.fail(format!("tracemalloc.{code}() failed"));
        }
    }

    /// Grows or shrinks a block through the API its kind allows, keeping
    /// and checking the common prefix.
    fn resize(&mut self, mut block: Block, seed: u8) {
        self.check(&block, "before resize");
        let new_len = self.rng.size(1);
        let keep = block.len.min(new_len);
        match &mut block.kind {
            Kind::Rust { align } => {
                // SAFETY: the block is live with this layout; non-zero new size.
                let moved = unsafe {
                    PyAlloc.realloc(
                        block.ptr as *mut u8,
                        Layout::from_size_align_unchecked(block.len, *align),
                        new_len,
                    )
                };
                if moved.is_null() || moved as usize % *align != 0 {
                    self.fail(format!("realloc {block:?} to {new_len} gave {moved:?}"));
                }
                block.ptr = moved as usize;
            }
            Kind::CApi | Kind::PyMem => {
                // SAFETY: a live C API or PyMem block.
                let moved = unsafe { pyalloc::pyalloc_realloc(block.ptr as *mut _, new_len) } as *mut u8;
                if moved.is_null() {
                    let pymem = common::is_pymem(block.ptr as *const u8);
                    if !pymem || self.holds_gil() {
                        self.fail(format!("pyalloc_realloc {block:?} to {new_len} gave NULL"));
                    }
                    // Documented: a pymem block cannot move without the GIL.
                    self.check(&block, "after a refused realloc");
                    self.push(block);
                    return;
                }
                block.ptr = moved as usize;
            }
            Kind::Vec(bytes) => {
                bytes.resize(new_len, 0);
                if self.rng.below(2) == 0 {
                    bytes.shrink_to_fit();
                }
                block.ptr = bytes.as_ptr() as usize;
            }
        }
        if !intact(block.ptr as *const u8, keep, block.seed) {
            self.fail(format!("resize lost the contents of {block:?}"));
        }
        block.len = new_len;
        block.seed = seed;
        fill(block.ptr as *mut u8, new_len, seed);
        self.push(block);
    }

    /// Rust to C (`into_pymem`, then C frees it with PyMem_Free) and C to
    /// Rust (`vec_from_pymem`).
    fn hand_over(&mut self, block: Block) {
        self.check(&block, "before the hand-over");
        match block.kind {
            Kind::Vec(bytes) if self.holds_gil() => match into_pymem(bytes) {
                Ok(pymem) => {
                    let (ptr, len) = pymem.into_raw();
                    self.push(Block {
                        kind: Kind::PyMem,
                        ptr: ptr as usize,
                        len,
                        seed: block.seed,
                    });
                }
                Err(_) => self.fail("into_pymem failed with the GIL held".into()),
            },
            Kind::PyMem => {
                // SAFETY: a live PyMem block of `len` initialised bytes, given up.
                let bytes = unsafe { vec_from_pymem(block.ptr as *mut u8, block.len) };
                let ptr = bytes.as_ptr() as usize;
                let len = bytes.len();
                self.push(Block {
                    kind: Kind::Vec(bytes),
                    ptr,
                    len,
                    seed: block.seed,
                });
            }
            kind => self.push(Block { kind, ..block }),
        }
    }
}
