//! A tiny JSON writer for the admin API: objects, arrays, strings with
//! proper escaping, numbers. No parsing (the API takes no JSON in).

use std::fmt::Write;

/// Appends `s` as a JSON string literal. Control characters are escaped,
/// and so are `<`, `>` and `&`, so the text is also safe inside HTML.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds one JSON value; commas are placed by the writer.
pub struct Json {
    pub out: String,
    /// Per open container: whether it already has an element.
    first: Vec<bool>,
}

impl Default for Json {
    fn default() -> Self {
        Json::new()
    }
}

impl Json {
    pub fn new() -> Json {
        Json {
            out: String::with_capacity(1024),
            first: Vec::new(),
        }
    }

    fn sep(&mut self) {
        if let Some(f) = self.first.last_mut() {
            if *f {
                *f = false;
            } else {
                self.out.push(',');
            }
        }
    }

    fn key(&mut self, k: &str) {
        self.sep();
        string(&mut self.out, k);
        self.out.push(':');
    }

    pub fn begin_object(&mut self) {
        self.sep();
        self.out.push('{');
        self.first.push(true);
    }

    pub fn begin_array(&mut self) {
        self.sep();
        self.out.push('[');
        self.first.push(true);
    }

    pub fn end_object(&mut self) {
        self.out.push('}');
        self.first.pop();
    }

    pub fn end_array(&mut self) {
        self.out.push(']');
        self.first.pop();
    }

    /// `"k": {` inside an object.
    pub fn object_field(&mut self, k: &str) {
        self.key(k);
        self.out.push('{');
        self.first.push(true);
    }

    /// `"k": [` inside an object.
    pub fn array_field(&mut self, k: &str) {
        self.key(k);
        self.out.push('[');
        self.first.push(true);
    }

    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        string(&mut self.out, v);
    }

    pub fn num(&mut self, k: &str, v: impl std::fmt::Display) {
        self.key(k);
        let _ = write!(self.out, "{v}");
    }

    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
    }

    pub fn null(&mut self, k: &str) {
        self.key(k);
        self.out.push_str("null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_commas_placed() {
        let mut j = Json::new();
        j.begin_object();
        j.str("a\"", "x\\y\n\u{1}</script>");
        j.array_field("l");
        j.begin_object();
        j.num("n", 3);
        j.bool("b", true);
        j.end_object();
        j.begin_object();
        j.null("z");
        j.end_object();
        j.end_array();
        j.end_object();
        assert_eq!(
            j.out,
            r#"{"a\"":"x\\y\n\u0001\u003c/script\u003e","l":[{"n":3,"b":true},{"z":null}]}"#
        );
    }
}
