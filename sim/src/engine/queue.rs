//! The event queue: events ordered by (time, sequence number), where the sequence
//! number is the order of scheduling. Two events at the same millisecond therefore
//! always run in the order they were scheduled, never in an order a hash or a heap
//! layout would choose.

use sluice_core::time::Instant;
use std::collections::BTreeMap;

/// Pending events of type `E`.
#[derive(Debug)]
pub struct EventQueue<E> {
    events: BTreeMap<(Instant, u64), E>,
    next_sequence: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            events: BTreeMap::new(),
            next_sequence: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Instant, event: E) {
        self.events.insert((at, self.next_sequence), event);
        self.next_sequence += 1;
    }

    /// The earliest event, first scheduled first among equals.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        self.events.pop_first().map(|((at, _), event)| (at, event))
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_time_then_scheduling_order() {
        let mut queue = EventQueue::default();
        queue.push(Instant::from_millis(20), "late");
        queue.push(Instant::from_millis(10), "first");
        queue.push(Instant::from_millis(10), "second");
        let order: Vec<&str> = std::iter::from_fn(|| queue.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["first", "second", "late"]);
    }
}
