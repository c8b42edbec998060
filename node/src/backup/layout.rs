//! Where each backup object lives in a target, and what its name tells.
//!
//! ```text
//! full/<index:020>-<taken_at_ms:016>-<node>/data       the state machine's pairs (sealed)
//! full/<index:020>-<taken_at_ms:016>-<node>/manifest   what the set holds, with the data's SHA-256 (sealed)
//! archive/<first:020>-<last:020>-<first_at_ms:016>-<last_at_ms:016>   committed log entries (sealed)
//! ```
//!
//! Names sort by log index, so a listing is already in order. A name is
//! only a hint: every sealed object carries its own name inside, so an
//! object renamed or copied to another place is refused when opened.

use object_store::path::Path;

use super::error::BackupError;

/// Folder of full backup sets.
pub const FULL_PREFIX: &str = "full";
/// Folder of log archive segments.
pub const ARCHIVE_PREFIX: &str = "archive";
/// File name of a set's data object.
const DATA_FILE: &str = "data";
/// File name of a set's manifest.
const MANIFEST_FILE: &str = "manifest";

/// A full backup set: the applied index it holds, when and where it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SetName {
    pub index: u64,
    pub taken_at_ms: i64,
    pub node: u64,
}

impl SetName {
    /// The set's folder name.
    pub fn folder(&self) -> String {
        format!("{:020}-{:016}-{}", self.index, self.taken_at_ms, self.node)
    }

    /// The set's data object.
    pub fn data_path(&self) -> Path {
        Path::from(format!("{FULL_PREFIX}/{}/{DATA_FILE}", self.folder()))
    }

    /// The set's manifest.
    pub fn manifest_path(&self) -> Path {
        Path::from(format!("{FULL_PREFIX}/{}/{MANIFEST_FILE}", self.folder()))
    }

    /// Reads a set from the path of its manifest; `None` for any other path.
    pub fn from_manifest_path(path: &Path) -> Option<Self> {
        let parts: Vec<_> = path.parts().collect();
        let [prefix, folder, file] = parts.as_slice() else {
            return None;
        };
        if prefix.as_ref() != FULL_PREFIX || file.as_ref() != MANIFEST_FILE {
            return None;
        }
        let mut fields = folder.as_ref().splitn(3, '-');
        Some(Self {
            index: fields.next()?.parse().ok()?,
            taken_at_ms: fields.next()?.parse().ok()?,
            node: fields.next()?.parse().ok()?,
        })
    }
}

/// A log archive segment: the entries it holds and their commit-time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    pub first: u64,
    pub last: u64,
    /// The leader's clock at the first and last command the segment holds
    /// (ms since the Unix epoch; equal to the previous segment's end when it
    /// holds no command).
    pub first_at_ms: i64,
    pub last_at_ms: i64,
}

impl SegmentName {
    /// The segment's object.
    pub fn path(&self) -> Path {
        assert!(self.first <= self.last, "a segment holds at least one entry");
        Path::from(format!(
            "{ARCHIVE_PREFIX}/{:020}-{:020}-{:016}-{:016}",
            self.first, self.last, self.first_at_ms, self.last_at_ms
        ))
    }

    /// Reads a segment from its path; `None` for any other path.
    pub fn from_path(path: &Path) -> Option<Self> {
        let parts: Vec<_> = path.parts().collect();
        let [prefix, name] = parts.as_slice() else {
            return None;
        };
        if prefix.as_ref() != ARCHIVE_PREFIX {
            return None;
        }
        let mut fields = name.as_ref().splitn(4, '-');
        let segment = Self {
            first: fields.next()?.parse().ok()?,
            last: fields.next()?.parse().ok()?,
            first_at_ms: fields.next()?.parse().ok()?,
            last_at_ms: fields.next()?.parse().ok()?,
        };
        (segment.first <= segment.last).then_some(segment)
    }
}

/// The error for a name that does not match what its object says.
pub fn misnamed(path: &Path, why: impl Into<String>) -> BackupError {
    BackupError::Tampered {
        object: path.to_string(),
        why: why.into(),
    }
}

/// A time for messages: RFC 3339 in UTC, to the millisecond.
pub fn format_ms(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_index() {
        let set = SetName {
            index: 42,
            taken_at_ms: 1_780_000_000_000,
            node: 2,
        };
        assert_eq!(SetName::from_manifest_path(&set.manifest_path()), Some(set));
        assert_eq!(SetName::from_manifest_path(&set.data_path()), None);
        let a = SegmentName {
            first: 9,
            last: 10,
            first_at_ms: 5,
            last_at_ms: 6,
        };
        let b = SegmentName {
            first: 11,
            last: 200,
            first_at_ms: 6,
            last_at_ms: 7,
        };
        assert_eq!(SegmentName::from_path(&a.path()), Some(a));
        assert!(a.path().to_string() < b.path().to_string());
        assert_eq!(SegmentName::from_path(&Path::from("archive/x")), None);
    }
}
