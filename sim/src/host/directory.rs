//! The simulated host's directory: the local domain's users, forwarding aliases,
//! groups (distribution lists) and optional catch-all, answering the router's
//! lookups as production's directory store does. It only answers questions; what
//! an answer means (expansion, catch-all for unknown local parts, refusal) is the
//! router's decision in core.

use sluice_core::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
use std::collections::BTreeMap;

/// The users, forwarding aliases, groups and catch-all of the local domain.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub domain: String,
    pub users: Vec<String>,
    /// Alias address to its targets.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Group address to its members: each member gets a copy.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Where mail to unknown local parts of the domain goes, if anywhere.
    pub catch_all: Option<String>,
}

impl Directory {
    /// The directory's answer to one router lookup.
    pub fn answer(&self, query: &DirectoryQuery) -> DirectoryAnswer {
        match query {
            DirectoryQuery::Domain { domain } => {
                DirectoryAnswer::Domain((domain.eq_ignore_ascii_case(&self.domain)).then(|| {
                    DomainEntry {
                        name: self.domain.clone(),
                        catch_all: self.catch_all.clone(),
                    }
                }))
            }
            DirectoryQuery::Address { address } => {
                DirectoryAnswer::Address(self.entry(&address.to_ascii_lowercase()))
            }
        }
    }

    fn entry(&self, address: &str) -> Option<AddressEntry> {
        if let Some(user) = self.users.iter().find(|user| *user == address) {
            return Some(AddressEntry::User {
                address: user.clone(),
            });
        }
        if let Some(targets) = self.aliases.get(address) {
            return Some(AddressEntry::Alias {
                targets: targets.clone(),
            });
        }
        self.groups.get(address).map(|members| AddressEntry::Group {
            members: members.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        Directory {
            domain: "sluice.test".into(),
            users: vec!["user1@sluice.test".into(), "user2@sluice.test".into()],
            aliases: BTreeMap::from([("fwd1@sluice.test".into(), vec!["x@far.example".into()])]),
            groups: BTreeMap::from([(
                "team1@sluice.test".into(),
                vec!["user1@sluice.test".into(), "user2@sluice.test".into()],
            )]),
            catch_all: Some("user1@sluice.test".into()),
        }
    }

    fn address(directory: &Directory, address: &str) -> DirectoryAnswer {
        directory.answer(&DirectoryQuery::Address {
            address: address.into(),
        })
    }

    #[test]
    fn the_directory_answers_users_and_aliases_case_insensitively() {
        let directory = directory();
        assert!(matches!(
            address(&directory, "User1@sluice.test"),
            DirectoryAnswer::Address(Some(AddressEntry::User { .. }))
        ));
        assert!(matches!(
            address(&directory, "FWD1@sluice.test"),
            DirectoryAnswer::Address(Some(AddressEntry::Alias { .. }))
        ));
        let domain = directory.answer(&DirectoryQuery::Domain {
            domain: "SLUICE.test".into(),
        });
        assert!(matches!(domain, DirectoryAnswer::Domain(Some(_))));
    }

    #[test]
    fn groups_answer_their_members_and_unknown_names_answer_nothing() {
        let directory = directory();
        let DirectoryAnswer::Address(Some(AddressEntry::Group { members })) =
            address(&directory, "Team1@sluice.test")
        else {
            panic!("team1 is a group");
        };
        assert_eq!(members.len(), 2);
        assert!(matches!(
            address(&directory, "nobody@sluice.test"),
            DirectoryAnswer::Address(None)
        ));
    }

    #[test]
    fn the_domain_names_its_catch_all_only_when_one_is_configured() {
        let mut directory = directory();
        let query = DirectoryQuery::Domain {
            domain: "sluice.test".into(),
        };
        let DirectoryAnswer::Domain(Some(entry)) = directory.answer(&query) else {
            panic!("the local domain is known");
        };
        assert_eq!(entry.catch_all.as_deref(), Some("user1@sluice.test"));
        directory.catch_all = None;
        let DirectoryAnswer::Domain(Some(entry)) = directory.answer(&query) else {
            panic!("the local domain is known");
        };
        assert_eq!(entry.catch_all, None);
    }
}
