//! What a queue is configured with — its retry schedule and its bounds — and the
//! check that they make sense before the first message arrives.

use super::limits::QueueLimits;
use super::schedule::RetrySchedule;

/// Everything a queue needs to know before its first message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub schedule: RetrySchedule,
    pub limits: QueueLimits,
}

/// A configuration value that cannot work, named by its field (`schedule.first_retry`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("queue.{field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl QueueConfig {
    /// Checks every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.schedule.validate()?;
        self.limits.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn the_default_is_valid_and_errors_read_as_config_keys() {
        assert_eq!(QueueConfig::default().validate(), Ok(()));
        let mut config = QueueConfig::default();
        config.schedule.expire_after = Duration::ZERO;
        let error = config.validate().err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("queue.schedule.expire_after: must be longer than zero")
        );
    }
}
