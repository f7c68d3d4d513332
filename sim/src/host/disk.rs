//! A simulated disk: writes sit in a volatile buffer until their fsync completes;
//! only then are they applied to the durable state. A crash drops the buffer, so
//! a host restarts with exactly what was made durable. The world draws the fsync
//! latency and the injected failures (I/O error, full disk) from the seed.

use std::collections::BTreeMap;

/// Why a write was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    Full,
    Io,
}

/// Writes of type `T` between submission and durability, and the durable state `S`.
#[derive(Debug, Default)]
pub struct Disk<T, S> {
    pub durable: S,
    pending: BTreeMap<u64, T>,
    next_write: u64,
    /// Set while a "disk full" fault lasts: new writes fail at once.
    pub full: bool,
}

impl<T, S> Disk<T, S> {
    pub fn new(durable: S) -> Disk<T, S> {
        Disk {
            durable,
            pending: BTreeMap::new(),
            next_write: 0,
            full: false,
        }
    }

    /// Buffers a write and names it; its fsync is for the caller to schedule.
    pub fn submit(&mut self, write: T) -> Result<u64, DiskError> {
        if self.full {
            return Err(DiskError::Full);
        }
        self.next_write += 1;
        self.pending.insert(self.next_write, write);
        Ok(self.next_write)
    }

    /// The fsync of `id` finished: the write, for the caller to apply to `durable`
    /// (`None` if a crash dropped it meanwhile).
    pub fn synced(&mut self, id: u64) -> Option<T> {
        self.pending.remove(&id)
    }

    /// A crash: every write not yet durable is gone. How many were lost.
    pub fn crash(&mut self) -> usize {
        let lost = self.pending.len();
        self.pending.clear();
        lost
    }

    pub fn unsynced(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loses_exactly_the_unsynced_writes() {
        let mut disk: Disk<&str, Vec<&str>> = Disk::new(Vec::new());
        let first = disk.submit("a").unwrap();
        let _second = disk.submit("b").unwrap();
        if let Some(write) = disk.synced(first) {
            disk.durable.push(write);
        }
        assert_eq!(disk.crash(), 1);
        assert_eq!(disk.durable, ["a"]);
        disk.full = true;
        assert_eq!(disk.submit("c"), Err(DiskError::Full));
    }
}
