//! Sluice's deterministic simulator: a single-threaded discrete-event loop with a
//! seeded generator, a virtual clock and an event queue ordered by (time, sequence).
//! Simulated hosts run the very `sluice-core` node machines that `sluice-net` runs;
//! the simulator injects faults from the seed and checks the guarantees of
//! ARCHITECTURE.md on every run.
//!
//! Module plan (filled by the simulator issue):
//! - `rng`: the documented seeded generator.
//! - `world`: hosts, network, disks and DNS as simulated resources with faults.
//! - `scenario`: the TOML scenario files in `scenarios/`.
//! - `checkers`: one checker per guarantee.
//! - `trace`: the event trace, its hash and replay.
