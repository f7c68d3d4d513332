//! A whole SMTP/LMTP client session fed arbitrary server bytes, driver inputs and
//! ticks (body in `sluice_core::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_core::fuzzing::smtp_client(data));
