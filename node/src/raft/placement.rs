//! The zone placement guard: a voter set that cannot keep a quorum through
//! the loss of any single zone would stop the cluster with that zone, so such
//! a membership change is refused unless the operator forces it. That covers
//! a quorum inside one zone (`a,a,b`), and also sets where no zone holds a
//! quorum but one zone still holds too many (`a,a,b,c`: losing `a` leaves 2
//! of 4), and any set spread over fewer than three zones.

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

/// A voter set that loses its quorum when one zone is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "losing zone '{zone}' ({in_zone} of {voters} voters) would leave {left}, short of a quorum of {quorum}: \
     the cluster would stop with that zone. Keep voters in three or more zones with no zone holding \
     {voters} minus {quorum} or more of them (to swap one voter for another, use replace), or pass force \
     to accept the risk"
)]
pub struct ZoneLossBreaksQuorum {
    pub zone: String,
    pub in_zone: usize,
    pub voters: usize,
    pub quorum: usize,
    pub left: usize,
}

/// Checks a proposed voter set; `force` accepts any set.
pub fn check(voters: &[Voter], force: bool) -> Result<(), ZoneLossBreaksQuorum> {
    if force || voters.is_empty() {
        return Ok(());
    }
    let quorum = voters.len() / 2 + 1;
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for voter in voters {
        *per_zone.entry(voter.zone.as_str()).or_default() += 1;
    }
    match per_zone.into_iter().max_by_key(|(_, count)| *count) {
        Some((zone, in_zone)) if voters.len() - in_zone < quorum => Err(ZoneLossBreaksQuorum {
            zone: zone.to_string(),
            in_zone,
            voters: voters.len(),
            quorum,
            left: voters.len() - in_zone,
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

    #[test]
    fn refuses_a_zone_whose_loss_breaks_quorum_without_holding_one() {
        let err = check(&set(&["a", "a", "b", "c"]), false).unwrap_err();
        assert_eq!((err.zone.as_str(), err.in_zone, err.left, err.quorum), ("a", 2, 2, 3));
        assert!(err.to_string().contains("losing zone 'a'"), "{err}");
    }

    #[test]
    fn refuses_voters_in_only_two_zones() {
        assert!(check(&set(&["a", "b"]), false).is_err());
        assert!(check(&set(&["a", "a", "b", "b"]), false).is_err());
        assert!(check(&set(&["a", "b"]), true).is_ok());
    }

    #[test]
    fn accepts_sets_that_survive_any_one_zone() {
        assert!(check(&set(&["a", "b", "c", "d"]), false).is_ok());
        assert!(check(&set(&["a", "a", "b", "c", "d"]), false).is_ok());
        assert!(check(&set(&["a", "a", "b", "b", "c", "c", "d"]), false).is_ok());
    }
}
