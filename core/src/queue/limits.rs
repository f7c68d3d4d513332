//! Every bound the queue keeps, with documented defaults: concurrency and pacing per
//! destination, attempt size, attempts in flight, messages held, and the Received
//! header count past which a message is treated as a mail loop.

use super::config::ConfigError;
use crate::smtp::client::Limits;
use crate::time::Duration;

/// Every bound a queue keeps. Going over one is an explicit output (a refused
/// enqueue, a loop failure) or a wait, never a panic and never unbounded memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Attempts in flight at once to one destination. Default 20 (Postfix's
    /// `default_destination_concurrency_limit`).
    pub max_concurrent_per_destination: u32,
    /// Attempts started per minute per destination; `None` = unpaced. Default `None`.
    pub destination_rate: Option<AttemptRate>,
    /// Recipients in one attempt (one message, one destination). RFC 5321 §4.5.3.1.8
    /// requires servers to accept at least 100 RCPTs. Default 100.
    pub max_recipients_per_attempt: usize,
    /// Attempts in flight at once over all destinations. Default 500.
    pub max_attempts_in_flight: usize,
    /// Messages held; one more is refused ([`super::Refusal::QueueFull`]). A driver
    /// checks [`super::Queue::has_room`] before promising delivery. Default 100 000.
    pub max_messages: usize,
    /// Recipients of one message; one more refuses the message. Default 10 000.
    pub max_recipients_per_message: usize,
    /// Received headers a message may carry; a message with more fails all its
    /// recipients at once as a loop (5.4.6, RFC 5321 §6.3). Default 50.
    pub max_received_headers: u32,
    /// How long the queue waits for an attempt's result: past it the attempt's
    /// recipients are deferred as if it had failed temporarily, so that no attempt a
    /// driver loses holds its recipients for ever (see [`super::Queue`] for a result
    /// that arrives later). Default: the client's [`Limits::attempt_budget`] with the
    /// RFC 5321 timeouts (about three hours).
    pub attempt_timeout: Duration,
}

/// A token bucket per destination: `per_minute` attempts a minute on average, up to
/// `burst` at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptRate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_concurrent_per_destination: 20,
            destination_rate: None,
            max_recipients_per_attempt: 100,
            max_attempts_in_flight: 500,
            max_messages: 100_000,
            max_recipients_per_message: 10_000,
            max_received_headers: 50,
            attempt_timeout: Limits::default().attempt_budget(),
        }
    }
}

impl QueueLimits {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason| Err(ConfigError { field, reason });
        if self.max_concurrent_per_destination == 0 {
            return invalid(
                "limits.max_concurrent_per_destination",
                "must be at least 1",
            );
        }
        if let Some(rate) = self.destination_rate {
            if rate.per_minute == 0 {
                return invalid("limits.destination_rate.per_minute", "must be at least 1");
            }
            if rate.burst == 0 {
                return invalid("limits.destination_rate.burst", "must be at least 1");
            }
        }
        if self.max_recipients_per_attempt == 0 {
            return invalid("limits.max_recipients_per_attempt", "must be at least 1");
        }
        if self.max_attempts_in_flight == 0 {
            return invalid("limits.max_attempts_in_flight", "must be at least 1");
        }
        if self.attempt_timeout == Duration::ZERO {
            return invalid("limits.attempt_timeout", "must be longer than zero");
        }
        if self.max_messages == 0 {
            return invalid("limits.max_messages", "must be at least 1");
        }
        if self.max_recipients_per_message == 0 {
            return invalid("limits.max_recipients_per_message", "must be at least 1");
        }
        if self.max_received_headers == 0 {
            return invalid("limits.max_received_headers", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spoils one field of a valid value.
    type Breaker = fn(&mut QueueLimits);

    #[test]
    fn validation_names_the_bad_field() {
        assert_eq!(QueueLimits::default().validate(), Ok(()));
        let cases: [(Breaker, &str); 8] = [
            (
                |l| l.max_concurrent_per_destination = 0,
                "limits.max_concurrent_per_destination",
            ),
            (
                |l| {
                    l.destination_rate = Some(AttemptRate {
                        per_minute: 0,
                        burst: 1,
                    })
                },
                "limits.destination_rate.per_minute",
            ),
            (
                |l| {
                    l.destination_rate = Some(AttemptRate {
                        per_minute: 5,
                        burst: 0,
                    })
                },
                "limits.destination_rate.burst",
            ),
            (
                |l| l.max_recipients_per_attempt = 0,
                "limits.max_recipients_per_attempt",
            ),
            (
                |l| l.max_attempts_in_flight = 0,
                "limits.max_attempts_in_flight",
            ),
            (|l| l.max_messages = 0, "limits.max_messages"),
            (
                |l| l.max_recipients_per_message = 0,
                "limits.max_recipients_per_message",
            ),
            (
                |l| l.max_received_headers = 0,
                "limits.max_received_headers",
            ),
        ];
        for (break_it, field) in cases {
            let mut limits = QueueLimits::default();
            break_it(&mut limits);
            assert_eq!(limits.validate().map_err(|e| e.field), Err(field));
        }
    }
}
