//! How results look: human-readable text by default, one line of JSON with
//! `--json`. Values are shown as UTF-8 when they are valid UTF-8 and as hex,
//! clearly labelled, when they are not.

use std::fmt::Write as _;

use safekeep_client::{BackupInfo, ClusterStatus, Member, Record, ResponseHeader, Role};
use serde_json::{Value, json};

/// Longest value preview in a `list` line, in characters.
pub const MAX_PREVIEW_CHARS: usize = 60;

/// How a value is rendered as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes are valid UTF-8 and shown as they are.
    Utf8,
    /// The bytes are not valid UTF-8 and shown as lowercase hex.
    Hex,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf8",
            Self::Hex => "hex",
        }
    }
}

/// A value as text and the encoding used.
pub fn render_value(value: &[u8]) -> (String, Encoding) {
    match std::str::from_utf8(value) {
        Ok(text) => (text.to_string(), Encoding::Utf8),
        Err(_) => (hex(value), Encoding::Hex),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// A record as a JSON object; the value is a string with its encoding beside it.
pub fn record_json(record: &Record) -> Value {
    let (value, encoding) = render_value(&record.value);
    json!({
        "key": record.key,
        "value": value,
        "value_encoding": encoding.name(),
        "version": record.version,
        "updated_at_unix_ms": record.updated_at_unix_ms,
        "updated_at": format_unix_ms(record.updated_at_unix_ms),
    })
}

/// A record as a few labelled lines.
pub fn record_text(record: &Record) -> String {
    let (value, encoding) = render_value(&record.value);
    let value_label = match encoding {
        Encoding::Utf8 => "value:".to_string(),
        Encoding::Hex => format!("value (hex, not valid UTF-8, {} bytes):", record.value.len()),
    };
    format!(
        "key:        {}\nversion:    {}\nupdated at: {}\n{value_label} {value}",
        record.key,
        record.version,
        format_unix_ms(record.updated_at_unix_ms)
    )
}

/// A record as one line of a listing: key, version and a value preview.
pub fn record_line(record: &Record) -> String {
    let (value, encoding) = render_value(&record.value);
    let mut preview: String = value.chars().take(MAX_PREVIEW_CHARS).collect();
    if value.chars().count() > MAX_PREVIEW_CHARS {
        preview.push('…');
    }
    match encoding {
        Encoding::Utf8 => format!("{}\tv{}\t{preview:?}", record.key, record.version),
        Encoding::Hex => format!("{}\tv{}\thex:{preview}", record.key, record.version),
    }
}

/// The cluster status as a summary followed by a member table.
pub fn status_text(status: &ClusterStatus) -> String {
    let header = &status.header;
    let leader = if header.leader_id == 0 {
        "unknown".to_string()
    } else {
        header.leader_id.to_string()
    };
    let mut text = format!(
        "answered by node {} (zone {}), leader {leader}, term {}\n\
         log: last index {}, committed {}, applied {}\n",
        header.node_id, status.zone, header.term, status.last_log_index, status.committed_index, status.applied_index
    );
    if status.insecure {
        text.push_str("warning: the answering node serves without TLS\n");
    }
    text.push_str(&members_text(&status.members));
    match &status.backup {
        None => text.push_str("backups: none configured\n"),
        Some(backup) => text.push_str(&backup_text(backup)),
    }
    text
}

/// Where backups stand, a few lines.
fn backup_text(backup: &BackupInfo) -> String {
    let at = |ms: i64| {
        if ms == 0 {
            "never".to_string()
        } else {
            format_unix_ms(ms)
        }
    };
    let mut text = format!(
        "backups: {} (shipped by node {})\n",
        backup.target, backup.shipper_node_id
    );
    text.push_str(&format!(
        "  last full backup {} at log index {}\n  archive current at {}, restorable to {} (log index {})\n",
        at(backup.last_full_unix_ms),
        backup.last_full_index,
        at(backup.current_at_unix_ms),
        at(backup.restorable_unix_ms),
        backup.archived_index
    ));
    if let Some(error) = &backup.error {
        text.push_str(&format!("  warning: {error}\n"));
    }
    text
}

/// Members as an aligned table, one line each.
pub fn members_text(members: &[Member]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "ROLE".to_string(),
        "ZONE".to_string(),
        "CLIENT ADDRESS".to_string(),
        "PEER ADDRESS".to_string(),
        "MATCHED".to_string(),
        "LEADER".to_string(),
    ]];
    for member in members {
        rows.push([
            member.id.to_string(),
            role_name(member.role).to_string(),
            member.zone.clone(),
            member.client_address.clone(),
            member.peer_address.clone(),
            member
                .matched_index
                .map_or_else(|| "-".to_string(), |index| index.to_string()),
            if member.is_leader { "*" } else { "" }.to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Voter => "voter",
        Role::Learner => "learner",
        Role::Unspecified => "unspecified",
    }
}

/// Who answered, in words.
pub fn header_text(header: &ResponseHeader) -> String {
    format!(
        "answered by node {}, leader {}, term {}",
        header.node_id, header.leader_id, header.term
    )
}

/// Milliseconds since the Unix epoch as an RFC 3339 UTC timestamp.
pub fn format_unix_ms(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let hours = ms_of_day / 3_600_000;
    let minutes = ms_of_day / 60_000 % 60;
    let seconds = ms_of_day / 1_000 % 60;
    let millis = ms_of_day % 1_000;
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(format_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_unix_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_unix_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn non_utf8_values_render_as_labelled_hex() {
        assert_eq!(render_value(b"hi"), ("hi".to_string(), Encoding::Utf8));
        assert_eq!(render_value(&[0xff, 0x00]), ("ff00".to_string(), Encoding::Hex));
        let record = Record {
            key: "k".into(),
            value: vec![0xff],
            version: 1,
            updated_at_unix_ms: 0,
        };
        assert!(record_text(&record).contains("hex, not valid UTF-8"));
        assert_eq!(record_json(&record)["value_encoding"], "hex");
    }

    #[test]
    fn list_lines_stay_on_one_line_and_are_bounded() {
        let record = Record {
            key: "k".into(),
            value: "a\nb".repeat(100).into_bytes(),
            version: 3,
            updated_at_unix_ms: 0,
        };
        let line = record_line(&record);
        assert!(!line.contains('\n'));
        assert!(line.chars().count() < MAX_PREVIEW_CHARS * 2 + 20);
    }
}
