//! A whole IMAP server session fed arbitrary chunks, canned commands cut anywhere,
//! answers from the IMAP test store (or refusals, or answers of the wrong kind) and
//! ticks (body in `sluice_core::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_core::fuzzing::imap_session(data));
