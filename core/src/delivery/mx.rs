//! From an MX answer to the ordered list of hosts to try (RFC 5321 §5.1, RFC 7505).
//! To be written (issue 4).
