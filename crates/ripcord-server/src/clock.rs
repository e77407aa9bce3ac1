//! The server's clock: the wall clock in service, a manual one in tests.
//!
//! What the server does with "now" (ticking engines, refusing events from
//! the future, deadlines) reads it here, so that a test can stand still or
//! jump minutes without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ripcord_core::{Dur, Time};

/// The system clock's now. Only [`Clock::Wall`] and what runs outside the
/// server (the CLI, tests) read it; the server reads its [`Clock`].
pub fn wall_now() -> Time {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Time(ms)
}

#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    Wall,
    /// Milliseconds since the epoch, moved only by [`Clock::set`] and
    /// [`Clock::advance`]; clones share it.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(at: Time) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(at.0)))
    }

    pub fn now(&self) -> Time {
        match self {
            Clock::Wall => wall_now(),
            Clock::Manual(ms) => Time(ms.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock to `at`; the wall clock cannot be moved.
    pub fn set(&self, at: Time) {
        if let Clock::Manual(ms) = self {
            ms.store(at.0, Ordering::SeqCst);
        }
    }

    /// Moves a manual clock forward by `by`.
    pub fn advance(&self, by: Dur) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(by.0, Ordering::SeqCst);
        }
    }
}
