//! A whole POP3 server session fed arbitrary chunks, answers, message chunks and
//! ticks (body in `sluice_core::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_core::fuzzing::pop3_session(data));
