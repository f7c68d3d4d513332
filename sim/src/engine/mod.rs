//! The deterministic core of the simulator: a virtual clock, the seeded generator,
//! the (time, sequence)-ordered event queue and the trace, and the loop that pops
//! events in order. Nothing here reads the wall clock, OS randomness or a hash
//! map's iteration order, and one run is one thread, so a seed fixes the run.

pub mod queue;
pub mod rng;
pub mod trace;

pub use queue::EventQueue;
pub use rng::Pcg32;
pub use trace::Trace;

use sluice_core::time::{Duration, Instant};

/// The clock, the randomness, the pending events and the trace of one run.
#[derive(Debug)]
pub struct Engine<E> {
    now: Instant,
    pub rng: Pcg32,
    events: EventQueue<E>,
    pub trace: Trace,
    /// Events popped so far.
    processed: u64,
}

impl<E> Engine<E> {
    /// A run for `seed` at the epoch; `full_trace` keeps every trace line.
    pub fn new(seed: u64, full_trace: bool) -> Engine<E> {
        Engine {
            now: Instant::EPOCH,
            rng: Pcg32::new(seed, 0x5eed),
            events: EventQueue::default(),
            trace: Trace::new(full_trace),
            processed: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Schedules `event` at `at`; a time in the past means now (the clock never
    /// goes back).
    pub fn at(&mut self, at: Instant, event: E) {
        self.events.push(at.max(self.now), event);
    }

    pub fn after(&mut self, delay: Duration, event: E) {
        self.events.push(self.now + delay, event);
    }

    /// The next event no later than `end`, with the clock moved to its time.
    pub fn next_until(&mut self, end: Instant) -> Option<E> {
        let (at, event) = self.events.pop()?;
        if at > end {
            // Put it back so that a later, longer run would see it; this run is over.
            self.events.push(at, event);
            self.now = end;
            return None;
        }
        self.now = at;
        self.processed += 1;
        Some(event)
    }

    /// Writes one trace line at the current time.
    pub fn record(&mut self, text: &str) {
        self.trace.record(self.now, text);
    }

    pub fn processed(&self) -> u64 {
        self.processed
    }

    pub fn pending(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A toy world: each event schedules up to two children at random delays.
    fn toy_run(seed: u64) -> u64 {
        let mut engine: Engine<u32> = Engine::new(seed, false);
        engine.at(Instant::EPOCH, 0);
        let end = Instant::from_millis(10_000);
        while let Some(depth) = engine.next_until(end) {
            let text = format!("event depth={depth}");
            engine.record(&text);
            if depth < 12 {
                let children = if depth == 0 {
                    3
                } else {
                    engine.rng.between(0, 2)
                };
                for _ in 0..children {
                    let delay = Duration::from_millis(engine.rng.between(1, 500));
                    engine.after(delay, depth + 1);
                }
            }
        }
        engine.trace.hash()
    }

    #[test]
    fn the_clock_never_goes_back_and_the_end_is_respected() {
        let mut engine: Engine<&str> = Engine::new(1, true);
        engine.at(Instant::from_millis(50), "b");
        engine.at(Instant::from_millis(10), "a");
        engine.at(Instant::from_millis(500), "late");
        assert_eq!(engine.next_until(Instant::from_millis(100)), Some("a"));
        assert_eq!(engine.next_until(Instant::from_millis(100)), Some("b"));
        engine.at(Instant::from_millis(1), "past");
        assert_eq!(engine.next_until(Instant::from_millis(100)), Some("past"));
        assert_eq!(engine.now(), Instant::from_millis(50));
        assert_eq!(engine.next_until(Instant::from_millis(100)), None);
        assert_eq!(engine.pending(), 1);
    }

    proptest! {
        #[test]
        fn the_same_seed_gives_the_same_trace(seed in any::<u64>()) {
            prop_assert_eq!(toy_run(seed), toy_run(seed));
        }
    }

    #[test]
    fn different_seeds_usually_differ() {
        let hashes: std::collections::BTreeSet<u64> = (0..50).map(toy_run).collect();
        assert!(hashes.len() >= 45, "only {} distinct traces", hashes.len());
    }
}
