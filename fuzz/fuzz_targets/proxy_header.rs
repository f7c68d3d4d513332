//! The PROXY protocol v1/v2 header parser on arbitrary bytes
//! (body in `sluice_core::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_core::fuzzing::proxy_header(data));
