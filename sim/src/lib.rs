//! Sluice's deterministic simulator: a single-threaded discrete-event loop with a
//! seeded generator, a virtual clock and an event queue ordered by (time, sequence).
//! Simulated hosts run the very `sluice-core` machines that `sluice-net` runs; the
//! simulator injects faults from the seed and checks the guarantees of
//! ARCHITECTURE.md on every run.
//!
//! Modules:
//! - `engine`: the generator (PCG32), clock, event queue, trace and its hash.

pub mod engine;
