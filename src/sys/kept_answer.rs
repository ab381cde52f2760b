//! A yes-or-no answer worked out once and kept: a relaxed load after the
//! first time. Threads that race to work it out do the same work.

use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// A kept answer; `new()` knows none yet.
pub(crate) struct KeptAnswer(AtomicU8);

impl KeptAnswer {
    pub(crate) const fn new() -> Self {
        KeptAnswer(AtomicU8::new(UNKNOWN))
    }

    /// The kept answer, or `work`'s: kept when it is `Some`; `None` (worth
    /// asking again later) answers false this time.
    #[inline]
    pub(crate) fn get(&self, work: impl FnOnce() -> Option<bool>) -> bool {
        match self.0.load(Relaxed) {
            YES => true,
            NO => false,
            _ => match work() {
                Some(answer) => {
                    self.0.store(if answer { YES } else { NO }, Relaxed);
                    answer
                }
                None => false,
            },
        }
    }
}
