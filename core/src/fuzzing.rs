//! The bodies of the fuzz targets in `fuzz/`, kept here so that every corpus file
//! also runs as an ordinary test under `cargo test` (see `core/tests/fuzz_corpus.rs`).
