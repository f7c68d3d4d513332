//! Simulated DNS: MX, address, PTR and TXT records, with lookup failures, timeouts and
//! outages drawn from the seed. It only answers; turning answers into hosts to try
//! is core's (`delivery::mx::HostPlanner`), and a client's PTR names into its
//! confirmed name core's (`node::client_name::ClientNamer`), as in net.

use crate::engine::Pcg32;
use sluice_core::delivery::mx::HostPlan;
use sluice_core::delivery::mx::{
    AddressAnswer, HostPlanner, MxAnswer, MxLimits, PlanAnswer, PlanLookup, PlanStep,
    normalise_host,
};
use sluice_core::node::client_name::{ClientNamer, NameAnswer, NameLookup, NameStep};
use sluice_core::smtp::address::Domain;
use sluice_core::time::Duration;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// How long a lookup that times out takes before it is answered as a failure.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Dns {
    pub mx: BTreeMap<String, Vec<(u16, String)>>,
    /// Address records: a name to its addresses, in the order they are answered.
    pub addresses: BTreeMap<String, Vec<IpAddr>>,
    /// Reverse (PTR) records: an address to its names.
    pub ptr: BTreeMap<IpAddr, Vec<String>>,
    /// TXT records (DKIM key records): an owner name to its value.
    pub txt: BTreeMap<String, String>,
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
            Some(addresses) => AddressAnswer::Addresses(addresses.clone()),
            None => AddressAnswer::NoSuchDomain,
        };
        (answer, Duration::from_millis(2))
    }

    /// The forward-confirmed name of `ip` for the Received field (net's
    /// `dns::Resolver::reverse_name` runs the same `ClientNamer`): core asks for the
    /// PTR names and each name's addresses, this answers. An outage answers nothing,
    /// so the client is written as its address literal. Per-lookup failures are not
    /// drawn here, so that naming clients takes no random draws.
    pub fn client_name(&self, ip: IpAddr) -> Option<Domain> {
        let mut namer = ClientNamer::new(ip);
        loop {
            let answer = match namer.step() {
                NameStep::Done(name) => return name,
                NameStep::Lookup(_) if self.outage => NameAnswer::Ptr(Vec::new()),
                NameStep::Lookup(NameLookup::Ptr { ip }) => {
                    NameAnswer::Ptr(self.ptr.get(&ip).cloned().unwrap_or_default())
                }
                NameStep::Lookup(NameLookup::Addresses { name }) => NameAnswer::Addresses(
                    self.addresses
                        .get(&normalise_host(&name))
                        .cloned()
                        .unwrap_or_default(),
                ),
            };
            namer.answer(answer);
        }
    }

    /// I/O, not a decision (net's `dns::Resolver::host_plan` runs the same planner):
    /// core's planner asks for each lookup in turn, this answers them; with the
    /// total time the lookups took.
    pub fn host_plan(&mut self, rng: &mut Pcg32, domain: &str, seed: u64) -> (HostPlan, Duration) {
        let mut planner = HostPlanner::new(domain, seed, MxLimits::default());
        let mut took = Duration::ZERO;
        loop {
            let (answer, spent) = match planner.step() {
                PlanStep::Done(plan) => return (plan, took),
                PlanStep::Lookup(PlanLookup::Mx { domain }) => {
                    let (answer, spent) = self.mx_answer(rng, &domain);
                    (PlanAnswer::Mx(answer), spent)
                }
                PlanStep::Lookup(PlanLookup::Addresses { host }) => {
                    let (answer, spent) = self.address_answer(rng, &host);
                    (PlanAnswer::Addresses(answer), spent)
                }
            };
            took = took + spent;
            planner.answer(answer);
        }
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
            .insert("mx.far.example".into(), vec![IpAddr::from([10, 0, 0, 9])]);
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

    #[test]
    fn a_client_is_named_only_by_a_ptr_name_that_resolves_back() {
        let mut dns = dns();
        let client = IpAddr::from([10, 0, 0, 9]);
        assert_eq!(dns.client_name(client), None, "no PTR record");
        dns.ptr.insert(
            client,
            vec!["spoof.example.".into(), "MX.far.example.".into()],
        );
        assert_eq!(
            dns.client_name(client).map(|name| name.as_str().to_owned()),
            Some("mx.far.example".to_owned())
        );
        dns.addresses
            .insert("mx.far.example".into(), vec![IpAddr::from([10, 0, 0, 10])]);
        assert_eq!(dns.client_name(client), None, "the name points elsewhere");
        dns.addresses.insert("mx.far.example".into(), vec![client]);
        dns.outage = true;
        assert_eq!(dns.client_name(client), None, "an outage names nothing");
    }
}
