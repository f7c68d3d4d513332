//! A whole SMTP server session fed arbitrary chunks, answers and ticks
//! (body in `sluice_core::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_core::fuzzing::smtp_session(data));
