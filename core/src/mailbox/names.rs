//! Validation and normalisation of folder names and flags, shared by the model
//! and every store so that both accept and refuse exactly the same inputs.

use super::{INBOX, MailboxError};

/// Longest folder name, in bytes.
pub const MAX_FOLDER_NAME_LENGTH: usize = 255;
/// Longest flag, in bytes.
pub const MAX_FLAG_LENGTH: usize = 64;

const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// The stored form of a folder name: `INBOX` in any case becomes `INBOX`
/// (RFC 9051 §5.1); other names are kept as written. Refuses empty names, names
/// over [`MAX_FOLDER_NAME_LENGTH`], control characters and IMAP wildcards.
pub fn normalise_folder_name(name: &str) -> Result<String, MailboxError> {
    let invalid = || MailboxError::InvalidFolderName(name.to_owned());
    if name.is_empty() || name.len() > MAX_FOLDER_NAME_LENGTH {
        return Err(invalid());
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '*' || c == '%' || c == '\u{7f}')
    {
        return Err(invalid());
    }
    if name.trim() != name {
        return Err(invalid());
    }
    if name.eq_ignore_ascii_case(INBOX) {
        return Ok(INBOX.to_owned());
    }
    Ok(name.to_owned())
}

/// The stored form of a flag: a system flag in its canonical spelling, or a
/// keyword (an IMAP atom, RFC 9051 `flag-keyword`) as written. `\Recent` and
/// unknown `\` flags are refused.
pub fn normalise_flag(flag: &str) -> Result<String, MailboxError> {
    let invalid = || MailboxError::InvalidFlag(flag.to_owned());
    if let Some(system) = SYSTEM_FLAGS
        .iter()
        .find(|system| system.eq_ignore_ascii_case(flag))
    {
        return Ok((*system).to_owned());
    }
    if flag.is_empty() || flag.len() > MAX_FLAG_LENGTH {
        return Err(invalid());
    }
    // atom-specials (RFC 9051 §9): ( ) { SP CTL % * " \ ] — plus non-ASCII.
    let atom = flag.bytes().all(|byte| {
        byte.is_ascii_graphic()
            && !matches!(byte, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
    });
    if atom {
        Ok(flag.to_owned())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_case_insensitive_and_others_are_not() {
        assert_eq!(normalise_folder_name("inBox"), Ok("INBOX".to_owned()));
        assert_eq!(normalise_folder_name("Sent"), Ok("Sent".to_owned()));
        assert!(normalise_folder_name("").is_err());
        assert!(normalise_folder_name("a*").is_err());
        assert!(normalise_folder_name(" x").is_err());
    }

    #[test]
    fn flags_are_canonical() {
        assert_eq!(normalise_flag("\\SEEN"), Ok("\\Seen".to_owned()));
        assert_eq!(normalise_flag("$Junk"), Ok("$Junk".to_owned()));
        assert!(normalise_flag("\\Recent").is_err());
        assert!(normalise_flag("a b").is_err());
        assert!(normalise_flag("").is_err());
    }
}
