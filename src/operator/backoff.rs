//! Per-KfDef exponential backoff: how long to wait before the next attempt after consecutive
//! failed reconciles (or heals that could not be written), reset by a clean one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay after the first failure.
pub const FIRST: Duration = Duration::from_millis(250);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);

/// The delay after `failures` consecutive failures (the first is [`FIRST`], doubling up to
/// [`MAX`]).
pub fn delay(failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u32::MAX);
    FIRST.saturating_mul(factor).min(MAX)
}

/// Consecutive failures per KfDef UID.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts one more failure of `uid` and returns how long to wait.
    pub fn next(&self, uid: &str) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return MAX;
        };
        let count = failures.entry(uid.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        delay(*count)
    }

    /// Forgets the failures of `uid` (its last reconcile was clean).
    pub fn reset(&self, uid: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_first_up_to_the_cap() {
        assert_eq!(delay(1), FIRST);
        assert_eq!(delay(2), FIRST * 2);
        assert_eq!(delay(5), FIRST * 16);
        assert_eq!(delay(12), MAX);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn each_kfdef_backs_off_on_its_own_and_a_clean_reconcile_resets_it() {
        let backoff = Backoff::default();
        assert_eq!(backoff.next("a"), FIRST);
        assert_eq!(backoff.next("a"), FIRST * 2);
        assert_eq!(backoff.next("b"), FIRST);
        backoff.reset("a");
        assert_eq!(backoff.next("a"), FIRST);
    }
}
