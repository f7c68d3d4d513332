//! The SMTP command and reply parsers on arbitrary bytes (body in `sluice_core::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_core::fuzzing::smtp_command(data));
