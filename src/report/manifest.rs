//! manifest.json of an audit's report directory: written last by the audit (so a directory
//! with one holds a complete audit), read first by every command that takes an audit as input
//! (`diff`, `policy`, `firewall check`), with one set of error messages.

use std::io;
use std::path::Path;

/// Checks that `dir` holds an audit of one of the schema versions `reads` and returns its
/// version. Every error names the directory or file and says what to do.
pub fn check_audit_dir(dir: &Path, reads: &[u64]) -> Result<u64, String> {
    let shown = dir.display();
    if !dir.exists() {
        return Err(format!("{shown}: no such directory"));
    }
    if !dir.is_dir() {
        return Err(format!(
            "{shown}: not a directory (give the report directory of `flowaudit audit ... -o DIR`)"
        ));
    }
    let m = dir.join("manifest.json");
    let text = match std::fs::read_to_string(&m) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "{shown}: not an audit report directory: it has no manifest.json (`flowaudit audit ... -o DIR` writes one)"
            ))
        }
        Err(e) => return Err(format!("{}: cannot read: {e}", m.display())),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not valid JSON ({e}): not an audit report directory",
            m.display()
        )
    })?;
    let tool = v.get("tool").and_then(|x| x.as_str());
    let kind = v.get("kind").and_then(|x| x.as_str());
    if tool != Some("flowaudit") || kind != Some("audit") {
        return Err(format!(
            "{}: not the manifest of a flowaudit audit (tool {}, kind {})",
            m.display(),
            tool.unwrap_or("missing"),
            kind.unwrap_or("missing")
        ));
    }
    match v.get("schema_version").and_then(|x| x.as_u64()) {
        Some(n) if reads.contains(&n) => Ok(n),
        Some(n) => Err(format!(
            "{shown}: reports of schema version {n}, but this command reads schema versions {}: \
re-run the audit of that capture with this flowaudit",
            versions(reads)
        )),
        None => Err(format!(
            "{}: no schema_version: not an audit this flowaudit can read",
            m.display()
        )),
    }
}

/// `2, 3 and 4`.
fn versions(v: &[u64]) -> String {
    let s: Vec<String> = v.iter().map(u64::to_string).collect();
    match s.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => s.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(manifest: Option<&str>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        if let Some(m) = manifest {
            std::fs::write(d.path().join("manifest.json"), m).unwrap();
        }
        d
    }

    #[test]
    fn accepted_versions_read_and_the_rest_are_refused_with_the_reason() {
        let ok = dir_with(Some(
            r#"{"tool": "flowaudit", "kind": "audit", "schema_version": 4}"#,
        ));
        assert_eq!(check_audit_dir(ok.path(), &[2, 3, 4]), Ok(4));
        let e = check_audit_dir(ok.path(), &[2, 3]).unwrap_err();
        assert!(
            e.ends_with(
                ": reports of schema version 4, but this command reads schema versions 2 and 3: \
re-run the audit of that capture with this flowaudit"
            ),
            "{e}"
        );
        let cases = [
            (None, "it has no manifest.json"),
            (Some("schema_version = 1"), "not valid JSON"),
            (
                Some(r#"{"tool": "other", "schema_version": 1}"#),
                "not the manifest of a flowaudit audit (tool other, kind missing)",
            ),
            (
                Some(r#"{"tool": "flowaudit", "kind": "audit"}"#),
                "no schema_version",
            ),
        ];
        for (m, want) in cases {
            let d = dir_with(m);
            let e = check_audit_dir(d.path(), &[4]).unwrap_err();
            assert!(e.contains(want), "{m:?}: {e}");
        }
        let gone = ok.path().join("nothing-here");
        assert!(check_audit_dir(&gone, &[4])
            .unwrap_err()
            .ends_with("nothing-here: no such directory"));
    }

    #[test]
    fn version_lists_read_as_english() {
        assert_eq!(versions(&[4]), "4");
        assert_eq!(versions(&[3, 4]), "3 and 4");
        assert_eq!(versions(&[1, 2, 3, 4]), "1, 2, 3 and 4");
    }
}
