//! Delivery status notifications (RFC 3464 multipart/report, RFC 3461 semantics).
//! To be written (issue 4).
