//! The delivery policy: which [`Destination`](super::Destination) an external
//! recipient's domain takes. To be written (issue 4).

/// Placeholder until the policy lands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryPolicy {
    pub rules: Vec<PolicyRule>,
}

/// Placeholder until the policy lands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule;
