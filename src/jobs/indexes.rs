//! Sets of replica indexes written compactly as ranges (`0-3,7,9-10`), the format Kubernetes
//! Indexed Jobs use for `status.completedIndexes`, so a 1000-replica job's status stays small.

use std::collections::BTreeSet;
use std::fmt;

/// A set of replica indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexSet(BTreeSet<u32>);

impl IndexSet {
    /// Parses `0-3,7`; an absent or empty string is the empty set. Malformed parts are skipped
    /// (the status is ours to write, so they can only come from a hand edit).
    pub fn parse(text: Option<&str>) -> Self {
        let mut set = BTreeSet::new();
        for part in text.unwrap_or_default().split(',').map(str::trim) {
            match part.split_once('-') {
                Some((first, last)) => {
                    if let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) {
                        set.extend(first..=last);
                    }
                }
                None => {
                    if let Ok(index) = part.parse() {
                        set.insert(index);
                    }
                }
            }
        }
        Self(set)
    }

    /// Whether `index` is in the set.
    pub fn contains(&self, index: u32) -> bool {
        self.0.contains(&index)
    }

    /// Adds `index`; returns whether it was new.
    pub fn insert(&mut self, index: u32) -> bool {
        self.0.insert(index)
    }

    /// Removes every index at or above `len` (the replica count shrank).
    pub fn truncate(&mut self, len: u32) {
        self.0.retain(|&i| i < len);
    }

    /// The number of indexes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges form, or `None` for the empty set (so the status field is left out).
    pub fn to_field(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.to_string())
    }
}

impl fmt::Display for IndexSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut iter = self.0.iter().copied().peekable();
        let mut first = true;
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_compressed() {
        let mut set = IndexSet::default();
        for i in [0, 1, 2, 3, 7, 9, 10] {
            set.insert(i);
        }
        assert_eq!(set.to_string(), "0-3,7,9-10");
        assert_eq!(set.len(), 7);
    }

    #[test]
    fn parse_round_trips_and_skips_garbage() {
        let set = IndexSet::parse(Some("0-3, 7,x,9-10,5-"));
        assert_eq!(set.to_string(), "0-3,7,9-10");
        assert!(set.contains(2) && !set.contains(4));
        assert_eq!(IndexSet::parse(None), IndexSet::default());
        assert_eq!(IndexSet::parse(Some("")).to_field(), None);
    }

    #[test]
    fn insert_reports_novelty_and_truncate_drops_high_indexes() {
        let mut set = IndexSet::parse(Some("0-4"));
        assert!(!set.insert(3));
        assert!(set.insert(8));
        set.truncate(3);
        assert_eq!(set.to_field().as_deref(), Some("0-2"));
    }
}
