//! The SMTP and LMTP client session machine: one connection, one or more
//! transactions, a result per recipient. To be written (issue 4).
