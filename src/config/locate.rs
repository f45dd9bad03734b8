//! Maps a YAML path such as `listeners[2].bind` to the line it is on.
//!
//! serde_yaml keeps no positions once a document is deserialized, so
//! semantic errors (found after parsing) would have no line. This module
//! re-reads the text with a deliberately small model of block-style YAML:
//! each line is indentation, zero or more `- ` sequence markers, then a
//! `key:` or a scalar. That is enough for configuration files as people
//! write them; anything it does not understand (flow style `[a, b]`, `?`
//! complex keys, anchors used as structure) simply yields `None`, and the
//! caller falls back to the nearest enclosing path that was found.
//!
//! It does not validate YAML; serde_yaml does that first.

/// One segment of a YAML path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Splits `backends[1].servers[0]` into segments. `None` if malformed.
pub fn parse_path(path: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    if path.is_empty() {
        return Some(out);
    }
    for part in path.split('.') {
        let (name, mut indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Segment::Key(name.to_string()));
        } else if indexes.is_empty() {
            return None;
        }
        while !indexes.is_empty() {
            let inner = indexes.strip_prefix('[')?;
            let close = inner.find(']')?;
            out.push(Segment::Index(inner[..close].parse().ok()?));
            indexes = &inner[close + 1..];
        }
    }
    Some(out)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// A `- ` sequence item marker.
    Dash,
    Key(String),
    Scalar,
}

#[derive(Clone, Debug)]
struct Entry {
    /// 1-based.
    line: usize,
    /// 0-based column of the entry's first character.
    col: usize,
    /// True for the first entry of its line (only those end blocks).
    line_start: bool,
    kind: Kind,
}

/// The block structure of one YAML text, ready for lookups.
#[derive(Clone, Debug, Default)]
pub struct LineIndex {
    entries: Vec<Entry>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut entries = Vec::new();
        // While inside a `key: |` block scalar: the key's column; lines
        // indented deeper than it are content, not structure.
        let mut block_scalar_col: Option<usize> = None;
        for (i, raw_line) in text.lines().enumerate() {
            let line_no = i + 1;
            let indent = raw_line.len() - raw_line.trim_start_matches(' ').len();
            let content = raw_line[indent..].trim_end();
            if let Some(col) = block_scalar_col {
                if content.is_empty() || indent > col {
                    continue;
                }
                block_scalar_col = None;
            }
            if content.is_empty()
                || content.starts_with('#')
                || content.starts_with('%')
                || content == "---"
                || content == "..."
            {
                continue;
            }
            let mut col = indent;
            let mut rest = content;
            let mut line_start = true;
            while rest == "-" || rest.starts_with("- ") {
                entries.push(Entry {
                    line: line_no,
                    col,
                    line_start,
                    kind: Kind::Dash,
                });
                line_start = false;
                let after = &rest[1..];
                let spaces = after.len() - after.trim_start_matches(' ').len();
                col += 1 + spaces;
                rest = &after[spaces..];
            }
            if rest.is_empty() {
                continue;
            }
            let (kind, value) = split_key(rest);
            if let Kind::Key(_) = kind {
                let v = value.trim_start();
                if v.starts_with('|') || v.starts_with('>') {
                    block_scalar_col = Some(col);
                }
            }
            entries.push(Entry {
                line: line_no,
                col,
                line_start,
                kind,
            });
        }
        LineIndex { entries }
    }

    /// The 1-based line of the node at `path`, if the text has it in block style.
    pub fn locate(&self, path: &str) -> Option<usize> {
        let segments = parse_path(path)?;
        let mut start = 0usize;
        // Column of the node whose value we descend into; `None` at the root.
        let mut parent: Option<(usize, bool)> = None;
        let mut line = None;
        for seg in &segments {
            let block = self.block(start, parent);
            let block_col = block.first().map(|e| e.col)?;
            let mut count = 0usize;
            let mut found = None;
            for (offset, e) in block.iter().enumerate() {
                if e.col != block_col {
                    continue;
                }
                let hit = match (seg, &e.kind) {
                    (Segment::Key(k), Kind::Key(name)) => k == name,
                    (Segment::Index(n), Kind::Dash) => {
                        count += 1;
                        count == n + 1
                    }
                    _ => false,
                };
                if hit {
                    found = Some(start + offset);
                    break;
                }
            }
            let idx = found?;
            let e = &self.entries[idx];
            line = Some(e.line);
            parent = Some((e.col, matches!(e.kind, Kind::Key(_))));
            start = idx + 1;
        }
        line
    }

    /// The entries that form the value of the node at `parent`, starting at `start`.
    fn block(&self, start: usize, parent: Option<(usize, bool)>) -> &[Entry] {
        let rest = self.entries.get(start..).unwrap_or(&[]);
        let Some((pcol, parent_is_key)) = parent else {
            return rest;
        };
        let end = rest
            .iter()
            .position(|e| {
                e.line_start
                    && (e.col < pcol
                        // YAML lets a key's sequence sit at the key's own
                        // indentation (`servers:` then `- a` in column 0).
                        || (e.col == pcol && !(parent_is_key && e.kind == Kind::Dash)))
            })
            .unwrap_or(rest.len());
        &rest[..end]
    }
}

/// Splits `key: value` into the key and the text after the colon; anything
/// else is a scalar.
fn split_key(s: &str) -> (Kind, &str) {
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let body = &s[1..];
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if q == '"' && c == '\\' && !escaped {
                escaped = true;
                continue;
            }
            if c == q && !escaped {
                let after = body[i + 1..].trim_start_matches(' ');
                if let Some(value) = after.strip_prefix(':') {
                    if value.is_empty() || value.starts_with(' ') {
                        return (Kind::Key(body[..i].to_string()), value);
                    }
                }
                return (Kind::Scalar, "");
            }
            escaped = false;
        }
        return (Kind::Scalar, "");
    }
    if s.starts_with('{') || s.starts_with('[') || s.starts_with('#') {
        return (Kind::Scalar, "");
    }
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1] == b' ' {
            break;
        }
        if b == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            return (Kind::Key(s[..i].trim_end().to_string()), &s[i + 1..]);
        }
    }
    (Kind::Scalar, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"# leading comment
version: "2"
server:
  workers: auto

listeners:
  - name: a
    bind: ":80"
  - name: b   # comment
    bind: ":81"
    protocol: udp
backends:
- name: pool
  servers:
  - "10.0.0.1"
  - address: "10.0.0.2:80"
    weight: 0
  health_check:
    active:
      type: http
      send: |
        line one
        name: not a key
      path: /h
- name: flow
  servers: ["a", "b"]
"server name": x
"#;

    #[test]
    fn finds_block_style_paths() {
        let idx = LineIndex::new(DOC);
        assert_eq!(idx.locate("version"), Some(2));
        assert_eq!(idx.locate("server.workers"), Some(4));
        assert_eq!(idx.locate("listeners"), Some(6));
        assert_eq!(idx.locate("listeners[0]"), Some(7));
        assert_eq!(idx.locate("listeners[0].bind"), Some(8));
        assert_eq!(idx.locate("listeners[1].name"), Some(9));
        assert_eq!(idx.locate("listeners[1].protocol"), Some(11));
        assert_eq!(idx.locate("backends[0].servers[0]"), Some(15));
        assert_eq!(idx.locate("backends[0].servers[1]"), Some(16));
        assert_eq!(idx.locate("backends[0].servers[1].weight"), Some(17));
        assert_eq!(idx.locate("backends[0].health_check.active.path"), Some(24));
        assert_eq!(idx.locate("backends[1]"), Some(25));
        assert_eq!(idx.locate("backends[1].servers"), Some(26));
        assert_eq!(idx.locate("server name"), Some(27));
    }

    #[test]
    fn missing_or_flow_paths_give_none() {
        let idx = LineIndex::new(DOC);
        assert_eq!(idx.locate("listeners[2]"), None);
        assert_eq!(idx.locate("listeners[0].protocol"), None);
        assert_eq!(idx.locate("backends[1].servers[0]"), None);
        // The block scalar's content is not structure.
        assert_eq!(idx.locate("backends[0].health_check.active.name"), None);
        // A key of a later sibling is not found inside an earlier one.
        assert_eq!(idx.locate("listeners[0].protocol"), None);
        assert_eq!(idx.locate("server.bind"), None);
        assert_eq!(idx.locate("nope"), None);
        assert_eq!(LineIndex::new("").locate("a"), None);
        assert_eq!(LineIndex::new("{a: 1}").locate("a"), None);
    }

    #[test]
    fn nested_dashes_on_one_line() {
        let idx = LineIndex::new("a:\n  - - x\n    - y\n  - - z\n");
        assert_eq!(idx.locate("a[0][1]"), Some(3));
        assert_eq!(idx.locate("a[1][0]"), Some(4));
    }

    #[test]
    fn parses_paths() {
        use Segment::*;
        assert_eq!(
            parse_path("backends[1].servers[0]"),
            Some(vec![
                Key("backends".into()),
                Index(1),
                Key("servers".into()),
                Index(0)
            ])
        );
        assert_eq!(parse_path(""), Some(vec![]));
        assert_eq!(parse_path("a[x]"), None);
        assert_eq!(parse_path("a..b"), None);
        assert_eq!(parse_path("a[1"), None);
    }

    proptest::proptest! {
        /// Generated block-style files with both sequence indentations and
        /// keys in any order: every key is found on the line it was written.
        #[test]
        fn finds_every_generated_key(
            items in proptest::collection::vec(
                (proptest::sample::subsequence(vec!["name", "bind", "protocol", "idle_timeout"], 1..=4),
                 proptest::bool::ANY),
                1..6),
            seq_at_key_indent in proptest::bool::ANY,
        ) {
            let dash = if seq_at_key_indent { "" } else { "  " };
            let mut text = String::from("# generated\nlisteners:\n");
            let mut line = 2;
            let mut expected = Vec::new();
            for (i, (keys, first_on_dash_line)) in items.iter().enumerate() {
                for (k, key) in keys.iter().enumerate() {
                    if k == 0 && *first_on_dash_line {
                        text.push_str(&format!("{dash}- {key}: x\n"));
                        line += 1;
                    } else {
                        if k == 0 {
                            text.push_str(&format!("{dash}-\n"));
                            line += 1;
                        }
                        text.push_str(&format!("{dash}  {key}: \"v\"  # c\n\n"));
                        line += 2;
                        expected.push((format!("listeners[{i}].{key}"), line - 1));
                        continue;
                    }
                    expected.push((format!("listeners[{i}].{key}"), line));
                }
            }
            text.push_str("backends: []\n");
            let idx = LineIndex::new(&text);
            for (path, want) in &expected {
                proptest::prop_assert_eq!(idx.locate(path), Some(*want), "{} in\n{}", path, text);
            }
            let n = items.len();
            proptest::prop_assert_eq!(idx.locate(&format!("listeners[{n}]")), None);
            proptest::prop_assert_eq!(idx.locate("backends"), Some(line + 1));
        }

        #[test]
        fn never_panics(text in "[a-z:\\- \n\"'#|>\\[\\]{}]{0,120}", path in "[a-z.\\[\\]0-9]{0,20}") {
            let _ = LineIndex::new(&text).locate(&path);
        }
    }

    #[test]
    fn keys_and_scalars() {
        assert_eq!(split_key("bind: \":80\"").0, Kind::Key("bind".into()));
        assert_eq!(split_key("servers:").0, Kind::Key("servers".into()));
        assert_eq!(split_key("\"10.0.0.1:80\"").0, Kind::Scalar);
        assert_eq!(split_key("10.0.0.1:80").0, Kind::Scalar);
        assert_eq!(split_key("'a b': 1").0, Kind::Key("a b".into()));
        assert_eq!(split_key("x # y: z").0, Kind::Scalar);
        assert_eq!(split_key("{a: b}").0, Kind::Scalar);
    }
}
