//! The zone placement guard: a voter set in which one zone holds a quorum
//! would lose the whole cluster with that zone, so such a membership change is
//! refused unless the operator forces it.

use std::collections::BTreeMap;

/// A voter and the zone it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: u64,
    pub zone: String,
}

impl Voter {
    pub fn new(id: u64, zone: impl Into<String>) -> Self {
        Self { id, zone: zone.into() }
    }
}

/// A voter set that puts a quorum in one zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "zone '{zone}' would hold {in_zone} of {voters} voters, a quorum ({quorum}): losing that zone \
     would stop the cluster; spread voters over more zones, or pass force to accept the risk"
)]
pub struct QuorumInOneZone {
    pub zone: String,
    pub in_zone: usize,
    pub voters: usize,
    pub quorum: usize,
}

/// Checks a proposed voter set; `force` accepts any set.
pub fn check(voters: &[Voter], force: bool) -> Result<(), QuorumInOneZone> {
    if force || voters.is_empty() {
        return Ok(());
    }
    let quorum = voters.len() / 2 + 1;
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for voter in voters {
        *per_zone.entry(voter.zone.as_str()).or_default() += 1;
    }
    match per_zone.into_iter().max_by_key(|(_, count)| *count) {
        Some((zone, in_zone)) if in_zone >= quorum => Err(QuorumInOneZone {
            zone: zone.to_string(),
            in_zone,
            voters: voters.len(),
            quorum,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(zones: &[&str]) -> Vec<Voter> {
        zones
            .iter()
            .enumerate()
            .map(|(i, z)| Voter::new(i as u64 + 1, *z))
            .collect()
    }

    #[test]
    fn refuses_two_of_three_voters_in_one_zone() {
        let err = check(&set(&["a", "a", "b"]), false).unwrap_err();
        assert_eq!(err.zone, "a");
        assert_eq!((err.in_zone, err.quorum), (2, 2));
    }

    #[test]
    fn accepts_one_voter_per_zone() {
        assert!(check(&set(&["a", "b", "c"]), false).is_ok());
    }

    #[test]
    fn accepts_two_two_one_over_three_zones() {
        assert!(check(&set(&["a", "a", "b", "b", "c"]), false).is_ok());
    }

    #[test]
    fn refuses_three_of_five_in_one_zone() {
        assert!(check(&set(&["a", "a", "a", "b", "c"]), false).is_err());
    }

    #[test]
    fn force_accepts_a_quorum_in_one_zone() {
        assert!(check(&set(&["a", "a", "b"]), true).is_ok());
    }

    #[test]
    fn refuses_a_single_voter() {
        assert!(check(&set(&["a"]), false).is_err());
    }
}
