//! Simulated DNS: MX and address records, with lookup failures, timeouts and
//! outages drawn from the seed. It only answers; turning answers into hosts to try
//! is core's (`delivery::mx::hosts_to_try`, `connection_plan`), as in net.

use crate::engine::Pcg32;
use sluice_core::delivery::Failure;
use sluice_core::delivery::mx::{
    AddressAnswer, MxAnswer, MxLimits, connection_plan, hosts_to_try, normalise_host,
};
use sluice_core::time::Duration;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The hosts to try with their addresses, in order, or why there are none.
pub type HostPlan = Result<Vec<(String, Vec<IpAddr>)>, Failure>;

/// How long a lookup that times out takes before it is answered as a failure.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Dns {
    pub mx: BTreeMap<String, Vec<(u16, String)>>,
    pub addresses: BTreeMap<String, IpAddr>,
    /// During an outage every lookup fails.
    pub outage: bool,
    pub failure_ppm: u32,
    pub timeout_ppm: u32,
    /// Lookups that failed by injection, for the summary.
    pub failures: u64,
}

impl Dns {
    /// A fault for one lookup: the failure text and how long it took, if any.
    fn fault(&mut self, rng: &mut Pcg32) -> Option<(&'static str, Duration)> {
        let fault = if self.outage {
            Some(("SERVFAIL (outage)", Duration::from_millis(20)))
        } else if rng.chance(self.timeout_ppm) {
            Some(("timed out", TIMEOUT))
        } else if rng.chance(self.failure_ppm) {
            Some(("SERVFAIL", Duration::from_millis(20)))
        } else {
            None
        };
        if fault.is_some() {
            self.failures += 1;
        }
        fault
    }

    pub fn mx_answer(&mut self, rng: &mut Pcg32, domain: &str) -> (MxAnswer, Duration) {
        if let Some((text, took)) = self.fault(rng) {
            return (MxAnswer::TemporaryFailure(text.to_owned()), took);
        }
        let domain = normalise_host(domain);
        let answer = match self.mx.get(&domain) {
            Some(records) => MxAnswer::Records(records.clone()),
            None if self.addresses.contains_key(&domain) => MxAnswer::NoRecords,
            None => MxAnswer::NoSuchDomain,
        };
        (answer, Duration::from_millis(2))
    }

    pub fn address_answer(&mut self, rng: &mut Pcg32, host: &str) -> (AddressAnswer, Duration) {
        if let Some((text, took)) = self.fault(rng) {
            return (AddressAnswer::TemporaryFailure(text.to_owned()), took);
        }
        let answer = match self.addresses.get(&normalise_host(host)) {
            Some(address) => AddressAnswer::Addresses(vec![*address]),
            None => AddressAnswer::NoSuchDomain,
        };
        (answer, Duration::from_millis(2))
    }

    /// I/O, not a decision (net's `dns::Resolver::host_plan`): the MX answer through core's
    /// ordering, then each host's addresses through core's plan; with the total time
    /// the lookups took.
    pub fn host_plan(&mut self, rng: &mut Pcg32, domain: &str, seed: u64) -> (HostPlan, Duration) {
        let limits = MxLimits::default();
        let (answer, mut took) = self.mx_answer(rng, domain);
        let hosts = match hosts_to_try(domain, &answer, seed, &limits) {
            Ok(hosts) => hosts,
            Err(failure) => return (Err(failure), took),
        };
        let mut answers = Vec::with_capacity(hosts.len());
        for host in hosts {
            let (addresses, spent) = self.address_answer(rng, &host);
            took = took + spent;
            answers.push((host, addresses));
        }
        (connection_plan(domain, answers, &limits), took)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns() -> Dns {
        let mut dns = Dns::default();
        dns.mx
            .insert("far.example".into(), vec![(10, "mx.far.example".into())]);
        dns.addresses
            .insert("mx.far.example".into(), IpAddr::from([10, 0, 0, 9]));
        dns
    }

    #[test]
    fn a_plan_comes_from_core_and_an_outage_fails_it_temporarily() {
        let mut rng = Pcg32::new(3, 3);
        let mut dns = dns();
        let (plan, _) = dns.host_plan(&mut rng, "far.example", 1);
        assert_eq!(
            plan.ok(),
            Some(vec![(
                "mx.far.example".to_owned(),
                vec![IpAddr::from([10, 0, 0, 9])]
            )])
        );
        dns.outage = true;
        let (plan, _) = dns.host_plan(&mut rng, "far.example", 1);
        let failure = plan.err();
        assert_eq!(failure.map(|f| f.status.class), Some(4));
        dns.outage = false;
        let (plan, _) = dns.host_plan(&mut rng, "nowhere.example", 1);
        assert_eq!(plan.err().map(|f| f.status.class), Some(5));
    }
}
