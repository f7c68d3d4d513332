//! The queue machine: durable per-recipient delivery state, the retry schedule,
//! expiry, and which delay, failure and success notices to send. To be written (issue 4).
