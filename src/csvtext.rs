//! Text conventions shared by the CSV files people write (catalogs, roles, inventories,
//! waivers) and the Markdown reports: one way to skip comments, one way to escape a cell.

/// Replaces comment lines (`#` first, after optional blanks, outside a quoted cell) and blank
/// lines by an empty record (`""`), one line each, with `\n` line endings. The csv reader skips
/// such lines itself, but then reports the next record on the line where the skipped ones
/// began; empty records keep every line number right, and callers skip them.
pub fn blank_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_quotes = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let t = body.trim();
        if !in_quotes && (t.is_empty() || t.starts_with('#')) {
            out.push_str("\"\"");
        } else {
            // A quoted cell may run over several lines: a `#` line inside it is data.
            in_quotes ^= body.matches('"').count() % 2 == 1;
            out.push_str(body);
        }
        // Line endings become \n (as the catalog reader always made them): after an empty
        // record ended by \r\n, the csv reader puts every later record on the wrong line.
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// A Markdown table cell or list item: `|` escaped, line breaks made spaces.
pub fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_become_empty_records_on_their_lines() {
        let text = "# head\na,b\n\n  # indented\r\n\"x\n# not a comment\",y\nc,d";
        assert_eq!(
            blank_comments(text),
            "\"\"\na,b\n\"\"\n\"\"\n\"x\n# not a comment\",y\nc,d"
        );
        let masked = blank_comments(text);
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(masked.as_bytes());
        let lines: Vec<(u64, String)> = rdr
            .records()
            .map(|r| r.unwrap())
            .filter(|r| !r.iter().all(|c| c.is_empty()))
            .map(|r| (r.position().unwrap().line(), r.get(0).unwrap().to_string()))
            .collect();
        assert_eq!(
            lines,
            [
                (2, "a".to_string()),
                (5, "x\n# not a comment".to_string()),
                (7, "c".to_string())
            ]
        );
    }

    #[test]
    fn markdown_cells_escape_bars_and_join_lines() {
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
        assert_eq!(md_cell("plain"), "plain");
    }
}
