//! Names of sets and objects, derived from role ids, host names or addresses, made safe for one
//! firewall's syntax: only the characters it accepts, within its length limit, and unique (two
//! keys that clean to the same name, or a name cut to fit, get a short hash of the full key).

use std::collections::BTreeMap;

/// Hands out one safe name per key; the same keys in the same order give the same names.
pub struct Namer {
    prefix: String,
    max_len: usize,
    allowed: fn(char) -> bool,
    by_key: BTreeMap<String, String>,
    taken: BTreeMap<String, String>,
}

impl Namer {
    /// `prefix` starts every name (it must itself be allowed and begin with a letter);
    /// `max_len` counts the prefix.
    pub fn new(prefix: &str, max_len: usize, allowed: fn(char) -> bool) -> Namer {
        Namer {
            prefix: prefix.to_string(),
            max_len,
            allowed,
            by_key: BTreeMap::new(),
            taken: BTreeMap::new(),
        }
    }

    /// The name for `key` (the same name every time for the same key).
    pub fn name(&mut self, key: &str) -> String {
        if let Some(n) = self.by_key.get(key) {
            return n.clone();
        }
        let clean: String = key
            .chars()
            .map(|c| if (self.allowed)(c) { c } else { '_' })
            .collect();
        let mut name = format!("{}{clean}", self.prefix);
        let clash = self.taken.get(&name).is_some_and(|k| k != key);
        if name.len() > self.max_len || clash {
            let tag = format!("_{:06x}", fnv1a(key) & 0xff_ffff);
            let mut keep = self.max_len.saturating_sub(tag.len());
            while !name.is_char_boundary(keep.min(name.len())) {
                keep -= 1;
            }
            name.truncate(keep.min(name.len()));
            name.push_str(&tag);
        }
        self.taken.insert(name.clone(), key.to_string());
        self.by_key.insert(key.to_string(), name.clone());
        name
    }
}

/// FNV-1a, 32 bits: a stable hash (the standard library's changes between releases).
fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// ASCII letters, digits and `_`: safe in nftables, ipset, PowerShell variables.
pub fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Cisco ASA object names also take `-` and `.`.
pub fn asa_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Text for a comment or description in any of the syntaxes: printable ASCII without quotes,
/// backslashes or characters a shell or PowerShell would expand.
pub fn comment_text(s: &str, max_len: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            '"' | '\'' | '`' | '\\' | '$' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect();
    if out.len() > max_len {
        out.truncate(max_len.saturating_sub(3));
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_clean_unique_and_within_the_limit() {
        let mut n = Namer::new("fa_", 31, word_char);
        assert_eq!(n.name("backup-server"), "fa_backup_server");
        // Cleans to the same name as the key above: gets a hash suffix instead.
        let other = n.name("backup_server");
        assert_ne!(other, "fa_backup_server");
        assert!(other.starts_with("fa_backup_server_"));
        assert_eq!(n.name("backup-server"), "fa_backup_server");
        let long = n.name("aws-ec2-proxy-appliance-with-a-very-long-name");
        assert_eq!(long.len(), 31);
        assert!(long.chars().all(word_char));
        assert_eq!(n.name("vbr01 (Ü)"), "fa_vbr01____");
    }

    #[test]
    fn comment_text_drops_quotes_and_expansions() {
        assert_eq!(comment_text("a \"b\" $x `y`", 100), "a _b_ _x _y_");
        assert_eq!(comment_text("abcdefgh", 6), "abc...");
    }
}
