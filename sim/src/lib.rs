//! Sluice's deterministic simulator: a single-threaded discrete-event loop with a
//! seeded generator, a virtual clock and an event queue ordered by (time, sequence).
//! Simulated hosts run the very `sluice-core` machines that `sluice-net` runs; the
//! simulator injects faults from the seed and checks the guarantees of
//! ARCHITECTURE.md on every run.
//!
//! Determinism rules, kept everywhere in this crate: no wall clock (only the
//! binary's sweep reads it, for its budget and progress), no OS randomness (every
//! draw is from the run's PCG32), no hash-map iteration (BTreeMap, BTreeSet, Vec),
//! no threads inside a run. The same scenario and seed give the same trace hash.
//!
//! Modules:
//! - `engine`: the generator (PCG32), clock, event queue, trace and its hash.
//! - `scenario`: the TOML scenario files in `scenarios/`.
//! - `world`: network, connections, DNS, remote servers, clients, the load
//!   balancer, the faults, and the dispatch of events; it holds the Sluice hosts
//!   and calls them through their context.
//! - `host`: a Sluice host running core's machines, its state and its behaviour;
//!   `host::HostIo`, the narrow context it reaches its surroundings through (the
//!   world implements it; the host never names the world); and the deliberate
//!   bugs (`Bugs`) that prove the checkers can fail.
//! - `check`: the observation log and one checker per guarantee.
//! - `run`: one seeded run, its summary and violation report.

pub mod check;
pub mod engine;
pub mod host;
pub mod run;
pub mod scenario;
pub mod world;
