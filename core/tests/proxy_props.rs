//! Property tests of the PROXY protocol parser: written headers parse back, cut-short
//! headers ask for more, arbitrary bytes never panic, and the fuzz corpus replays.

#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::proxy::{ProxyError, ProxyHeader, ProxyLimits, parse, parse_with_limits};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Headers the formats can carry: both ends of one family, or neither.
fn header() -> impl Strategy<Value = ProxyHeader> {
    prop_oneof![
        Just(ProxyHeader::UNKNOWN),
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u16>()
        )
            .prop_map(|(source, destination, sport, dport)| ProxyHeader {
                source: Some((IpAddr::V4(Ipv4Addr::from(source)), sport)),
                destination: Some((IpAddr::V4(Ipv4Addr::from(destination)), dport)),
            }),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>()
        )
            .prop_map(|(source, destination, sport, dport)| ProxyHeader {
                source: Some((IpAddr::V6(Ipv6Addr::from(source)), sport)),
                destination: Some((IpAddr::V6(Ipv6Addr::from(destination)), dport)),
            }),
    ]
}

/// A v2 header with TLVs appended and its length field patched to match.
fn with_tlvs(header: &ProxyHeader, tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = header.to_v2();
    for (kind, value) in tlvs {
        bytes.push(*kind);
        bytes.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(value);
    }
    let length = u16::try_from(bytes.len() - 16).unwrap();
    bytes[14..16].copy_from_slice(&length.to_be_bytes());
    bytes
}

proptest! {
    #[test]
    fn v1_round_trips(header in header(), rest in vec(any::<u8>(), 0..64)) {
        let mut bytes = header.to_v1();
        let length = bytes.len();
        prop_assert!(length <= 107);
        bytes.extend_from_slice(&rest);
        prop_assert_eq!(parse(&bytes), Ok(Some((header, length))));
    }

    #[test]
    fn v2_round_trips(header in header(), rest in vec(any::<u8>(), 0..64)) {
        let mut bytes = header.to_v2();
        let length = bytes.len();
        bytes.extend_from_slice(&rest);
        prop_assert_eq!(parse(&bytes), Ok(Some((header, length))));
    }

    #[test]
    fn v2_tlvs_are_skipped(
        header in header().prop_filter("LOCAL carries no TLVs", |h| h.source.is_some()),
        tlvs in vec((any::<u8>(), vec(any::<u8>(), 0..40)), 0..8),
    ) {
        let bytes = with_tlvs(&header, &tlvs);
        prop_assert_eq!(parse(&bytes), Ok(Some((header, bytes.len()))));
    }

    #[test]
    fn truncated_headers_ask_for_more(
        header in header(),
        tlvs in vec((any::<u8>(), vec(any::<u8>(), 0..20)), 0..4),
        v2 in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = if v2 { with_tlvs(&header, &tlvs) } else { header.to_v1() };
        let cut = cut.index(bytes.len());
        prop_assert_eq!(parse(&bytes[..cut]), Ok(None));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        sluice_core::fuzzing::proxy_header(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_signature_never_panic(
        v2 in any::<bool>(),
        tail in vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = if v2 {
            b"\r\n\r\n\0\r\nQUIT\n".to_vec()
        } else {
            b"PROXY ".to_vec()
        };
        bytes.extend_from_slice(&tail);
        sluice_core::fuzzing::proxy_header(&bytes);
        if let Ok(Some((_, consumed))) = parse(&bytes) {
            prop_assert!(consumed <= bytes.len());
        }
    }

    #[test]
    fn oversized_v2_headers_are_refused(header in header(), limit in 16usize..64) {
        let bytes = with_tlvs(&header, &[(0x04, vec![0; 64])]);
        let limits = ProxyLimits { max_v2_header: limit };
        prop_assert_eq!(
            parse_with_limits(&bytes, &limits),
            Err(ProxyError::TooLong(bytes.len()))
        );
    }
}

#[test]
fn proxy_header_corpus_passes() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/proxy_header");
    let mut files: Vec<PathBuf> = fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "corpus {} is too small",
        folder.display()
    );
    let mut accepted = 0;
    for file in files {
        let data = fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| sluice_core::fuzzing::proxy_header(&data));
        assert!(outcome.is_ok(), "corpus file {} fails", file.display());
        if matches!(parse(&data), Ok(Some(_))) {
            accepted += 1;
        }
    }
    // The seeds are mostly valid headers; they would be useless if the parser refused them.
    assert!(accepted >= 8, "only {accepted} seeds parse");
}

#[test]
fn the_fuzz_body_accepts_its_own_examples() {
    sluice_core::fuzzing::proxy_header(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n");
    sluice_core::fuzzing::proxy_header(&ProxyHeader::UNKNOWN.to_v2());
    sluice_core::fuzzing::proxy_header(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00");
}
