//! Short, readable renderings of record values for reports: printable UTF-8
//! as a quoted string, anything else as hex, both cut to a bounded length so
//! a report stays readable whatever the workload writes.

use std::fmt;

/// Characters of a printable value shown before it is cut.
pub(crate) const MAX_VALUE_CHARS_SHOWN: usize = 32;
/// Bytes of a binary value shown (as hex) before it is cut.
pub(crate) const MAX_VALUE_BYTES_SHOWN: usize = 16;

/// Displays a byte value compactly.
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(text) if !text.chars().any(char::is_control) => {
                let shown: String = text.chars().take(MAX_VALUE_CHARS_SHOWN).collect();
                let cut = if shown.len() < text.len() { "…" } else { "" };
                write!(f, "{shown:?}{cut}")
            }
            _ => {
                f.write_str("0x")?;
                for byte in self.0.iter().take(MAX_VALUE_BYTES_SHOWN) {
                    write!(f, "{byte:02x}")?;
                }
                if self.0.len() > MAX_VALUE_BYTES_SHOWN {
                    f.write_str("…")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_values_are_quoted_and_binary_values_are_hex() {
        assert_eq!(Bytes(b"abc").to_string(), "\"abc\"");
        assert_eq!(Bytes(&[0, 255]).to_string(), "0x00ff");
        assert_eq!(
            Bytes(&[b'x'; 40]).to_string(),
            format!("\"{}\"…", "x".repeat(MAX_VALUE_CHARS_SHOWN))
        );
        assert_eq!(
            Bytes(&[1; 20]).to_string(),
            format!("0x{}…", "01".repeat(MAX_VALUE_BYTES_SHOWN))
        );
    }
}
