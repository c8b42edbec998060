//! The sequential specification each key is checked against: a register
//! holding `Option<(value, version)>`, plus what the order of writes implies
//! about versions.
//!
//! Versions are Raft log indices, so every write linearized after another
//! has a greater version. The model keeps `floor`, the smallest version the
//! latest linearized write can have: a write with a known version `v` needs
//! `v > floor`; a write whose version is unknown (its client timed out) takes
//! the smallest free one, `floor + 1`, and keeps its version open until a
//! read, a conflict or a compare-and-set pins it. Taking the smallest
//! possible versions is exact: any later constraint is a lower bound.
//!
//! Values are interned per key ([`ValueId`]) so a state is small and `Copy`.

/// A value interned per key.
pub(crate) type ValueId = u32;

/// The register's content: absent, or a value with its version (`None` until pinned for an unknown write).
pub(crate) type Current = Option<(ValueId, Option<u64>)>;

/// The register's state at one point of a linearization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct State {
    /// What a read would return now.
    pub(crate) current: Current,
    /// The smallest version the latest linearized write can have (0 before any write).
    pub(crate) floor: u64,
}

impl State {
    /// The state of a key nobody has written: absent.
    pub(crate) const INITIAL: State = State {
        current: None,
        floor: 0,
    };

    /// This state if the record's version can be `version` (0: absent), pinning an open version.
    fn with_version(self, version: u64) -> Option<State> {
        match self.current {
            None => (version == 0).then_some(self),
            Some((_, Some(known))) => (known == version).then_some(self),
            Some((value, None)) => (version >= self.floor).then_some(State {
                current: Some((value, Some(version))),
                floor: version,
            }),
        }
    }

    /// The floor after one more write with `version` (`None`: unknown), if the version fits.
    fn next_floor(self, version: Option<u64>) -> Option<u64> {
        match version {
            Some(version) => (version > self.floor).then_some(version),
            None => self.floor.checked_add(1),
        }
    }
}

/// What one operation does to, or says about, the register.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// A put (`expected_version: None`) or compare-and-set that took effect; `version: None` when unknown.
    Write {
        /// The value written.
        value: ValueId,
        /// The version a compare-and-set required, 0 for "absent".
        expected_version: Option<u64>,
        /// The write's version, `None` when its outcome is unknown.
        version: Option<u64>,
    },
    /// A compare-and-set that was refused with the record's `current_version`.
    Conflict {
        /// The version the caller expected.
        expected_version: u64,
        /// The version the store reported, 0 for absent.
        current_version: u64,
    },
    /// A delete that took effect: `Some((deleted, version))` when acknowledged, `None` when unknown.
    Delete {
        /// What the store answered, if it answered.
        result: Option<(bool, u64)>,
    },
    /// A read that returned `observed` (`None`: absent).
    Read {
        /// The value and version read.
        observed: Option<(ValueId, u64)>,
    },
}

impl Action {
    /// True for writes whose effect does not depend on the state (puts, deletes of unknown outcome).
    ///
    /// An optional (unknown) write followed directly by one of these can be
    /// dropped from a linearization without harm, so the search never tries it.
    pub(crate) fn overwrites_unconditionally(&self) -> bool {
        matches!(
            self,
            Action::Write {
                expected_version: None,
                ..
            } | Action::Delete { result: None }
        )
    }
}

impl Action {
    /// The greatest floor from which this action can still be linearized later, if bounded.
    ///
    /// The floor only grows along a linearization, and while a record with a
    /// known version is current the floor equals that version; so a write of
    /// version `v` needs the floor below `v`, and a read, conflict or
    /// compare-and-set that names version `v` needs it at most `v`. A search
    /// whose floor passes the bound of an operation still to be linearized
    /// is dead.
    pub(crate) fn floor_bound(&self) -> Option<u64> {
        match *self {
            Action::Write {
                expected_version,
                version: Some(version),
                ..
            } => {
                let before_write = version.saturating_sub(1);
                Some(match expected_version {
                    Some(expected) if expected > 0 => before_write.min(expected),
                    _ => before_write,
                })
            }
            Action::Conflict { current_version, .. } if current_version > 0 => Some(current_version),
            Action::Delete {
                result: Some((_, version)),
            } => Some(version.saturating_sub(1)),
            Action::Read {
                observed: Some((_, version)),
            } => Some(version),
            _ => None,
        }
    }
}

/// Applies `action` to `state`: the next state, or `None` when the action cannot happen in this state.
///
/// Monotone in `floor`: if it succeeds from a state, it succeeds from the
/// same state with a smaller floor, reaching a floor no greater. The search's
/// pruning relies on this.
pub(crate) fn step(state: State, action: &Action) -> Option<State> {
    match *action {
        Action::Write {
            value,
            expected_version,
            version,
        } => {
            let state = match expected_version {
                Some(expected) => state.with_version(expected)?,
                None => state,
            };
            Some(State {
                current: Some((value, version)),
                floor: state.next_floor(version)?,
            })
        }
        Action::Conflict {
            expected_version,
            current_version,
        } => {
            if expected_version == current_version {
                return None;
            }
            state.with_version(current_version)
        }
        Action::Delete { result } => {
            let version = match result {
                Some((deleted, _)) if deleted != state.current.is_some() => return None,
                Some((_, version)) => Some(version),
                None => None,
            };
            Some(State {
                current: None,
                floor: state.next_floor(version)?,
            })
        }
        Action::Read { observed: None } => state.current.is_none().then_some(state),
        Action::Read {
            observed: Some((value, version)),
        } => match state.current {
            Some((current, _)) if current == value => state.with_version(version),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(value: ValueId, version: Option<u64>) -> Action {
        Action::Write {
            value,
            expected_version: None,
            version,
        }
    }

    fn read(observed: Option<(ValueId, u64)>) -> Action {
        Action::Read { observed }
    }

    fn run(actions: &[Action]) -> Option<State> {
        actions.iter().try_fold(State::INITIAL, step)
    }

    #[test]
    fn acknowledged_put_is_read_back_with_its_version() {
        assert!(run(&[put(1, Some(5)), read(Some((1, 5)))]).is_some());
        assert!(run(&[put(1, Some(5)), read(Some((1, 4)))]).is_none());
        assert!(run(&[put(1, Some(5)), read(None)]).is_none());
    }

    #[test]
    fn versions_must_grow_in_linearization_order() {
        assert!(run(&[put(1, Some(5)), put(2, Some(4))]).is_none());
        assert!(run(&[put(1, Some(5)), put(2, Some(5))]).is_none());
        assert!(run(&[put(1, Some(5)), put(2, Some(6))]).is_some());
    }

    #[test]
    fn unknown_write_takes_the_smallest_free_version_until_pinned() {
        // Unknown write after v5 has version >= 6: a later known write needs > 6.
        assert!(run(&[put(1, Some(5)), put(2, None), put(3, Some(6))]).is_none());
        assert!(run(&[put(1, Some(5)), put(2, None), put(3, Some(7))]).is_some());
        // A read pins the unknown write's version; it must be above the previous write's.
        assert!(run(&[put(1, Some(5)), put(2, None), read(Some((2, 9)))]).is_some());
        assert!(run(&[put(1, Some(5)), put(2, None), read(Some((2, 5)))]).is_none());
        assert!(run(&[put(2, None), read(Some((2, 9))), put(3, Some(8))]).is_none());
        assert!(run(&[put(2, None), read(Some((2, 9))), read(Some((2, 10)))]).is_none());
    }

    #[test]
    fn compare_and_set_needs_the_expected_version() {
        let cas = |value, expected, version| Action::Write {
            value,
            expected_version: Some(expected),
            version: Some(version),
        };
        assert!(run(&[cas(1, 0, 3)]).is_some());
        assert!(run(&[cas(1, 2, 3)]).is_none());
        assert!(run(&[put(1, Some(3)), cas(2, 3, 4)]).is_some());
        assert!(run(&[put(1, Some(3)), cas(2, 0, 4)]).is_none());
    }

    #[test]
    fn conflict_reports_the_current_version_which_differs_from_the_expected_one() {
        let conflict = |expected_version, current_version| Action::Conflict {
            expected_version,
            current_version,
        };
        assert!(run(&[conflict(3, 0)]).is_some());
        assert!(run(&[conflict(0, 0)]).is_none());
        assert!(run(&[put(1, Some(3)), conflict(2, 3)]).is_some());
        assert!(run(&[put(1, Some(3)), conflict(2, 4)]).is_none());
        assert!(run(&[put(1, Some(3)), conflict(3, 3)]).is_none());
        assert!(run(&[put(1, None), conflict(0, 7), read(Some((1, 7)))]).is_some());
    }

    #[test]
    fn floor_bound_is_the_highest_floor_an_action_still_fits_after() {
        let cases = [
            (put(1, Some(5)), Some(4)),
            (put(1, None), None),
            (read(Some((1, 5))), Some(5)),
            (read(None), None),
            (
                Action::Delete {
                    result: Some((true, 5)),
                },
                Some(4),
            ),
            (Action::Delete { result: None }, None),
        ];
        for (action, bound) in cases {
            assert_eq!(action.floor_bound(), bound, "{action:?}");
            if let Some(bound) = bound {
                let present = State {
                    current: Some((1, None)),
                    floor: bound,
                };
                assert!(step(present, &action).is_some(), "{action:?} from floor {bound}");
                let later = State {
                    floor: bound + 1,
                    ..present
                };
                assert!(step(later, &action).is_none(), "{action:?} from floor {}", bound + 1);
            }
        }
    }

    #[test]
    fn delete_reports_whether_the_record_existed() {
        let delete = |deleted, version| Action::Delete {
            result: Some((deleted, version)),
        };
        assert!(run(&[delete(false, 1), read(None)]).is_some());
        assert!(run(&[delete(true, 1)]).is_none());
        assert!(run(&[put(1, Some(1)), delete(true, 2), read(None)]).is_some());
        assert!(run(&[put(1, Some(1)), delete(true, 1)]).is_none());
        assert!(run(&[put(1, Some(1)), Action::Delete { result: None }, put(2, Some(2))]).is_none());
    }
}
