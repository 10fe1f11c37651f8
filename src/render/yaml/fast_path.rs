//! A fast reader for the YAML that manifests are written in: block mappings and sequences, plain,
//! quoted and block scalars, one-line flow collections, comments and `---` between documents.
//!
//! It reads what the full parser ([`super::parse_documents`] and [`super::empty_values`]) reads,
//! in one pass and several times faster. Anything outside that subset (anchors and aliases,
//! tags, directives, scalars continued on another line, complex or non-string keys, tabs used for
//! indentation, repeated keys, malformed input) gives `None`, and the full parser reads the text
//! instead: the answer is the same either way, only the time differs. The corpus tests compare the
//! two on every manifest of the real-world corpora.

use super::FieldPath;
use serde_json::{Map, Value};

/// One non-empty document: its value and the fields written as nothing (`key:`).
pub(super) struct Document {
    pub value: Value,
    pub written_empty: Vec<FieldPath>,
}

/// Reads every non-empty document of `text`, or `None` when the text is outside the subset.
pub(super) fn parse_stream(text: &str) -> Option<Vec<Document>> {
    if !all_printable(text) {
        return None;
    }
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        path: Vec::new(),
        written_empty: Vec::new(),
        last_string: LastString::default(),
        depth: 0,
    };
    let mut documents = Vec::new();
    let mut marker_after_last = false;
    let mut last_string = LastString::default();
    loop {
        match reader.next_line(reader.pos) {
            Line::End => break,
            Line::Unsupported => return None,
            Line::Marker { next } => {
                reader.pos = next;
                marker_after_last = true;
            }
            Line::Content { start, indent } => {
                reader.pos = start + indent;
                let value = reader.block_node(indent)?;
                if !matches!(value, Value::Object(_) | Value::Array(_)) {
                    return None;
                }
                if let Line::Content { .. } | Line::Unsupported = reader.next_line(reader.pos) {
                    return None;
                }
                last_string = std::mem::take(&mut reader.last_string);
                documents.push(Document {
                    value,
                    written_empty: std::mem::take(&mut reader.written_empty),
                });
                marker_after_last = false;
            }
        }
    }
    // The full parser drops a final line break of the last string of a text that ends without
    // one (see `TrackedDocument`); do the same.
    let ends_open = !text.ends_with('\n') && !text.ends_with('"') && !text.ends_with('\'');
    if ends_open && last_string.ends_with_newline {
        if marker_after_last {
            return None;
        }
        let path = last_string.newline_path?;
        let mut value = &mut documents.last_mut()?.value;
        for segment in &path {
            value = match (value, segment) {
                (Value::Object(map), Segment::Key(key)) => map.get_mut(key)?,
                (Value::Array(items), Segment::Index(i)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        if let Value::String(s) = value {
            s.pop();
        }
    }
    Some(documents)
}

/// Whether `text` holds only characters YAML lets a stream hold, with neither a carriage return
/// nor a byte order mark (both left to the full parser, as are control characters it refuses).
fn all_printable(text: &str) -> bool {
    let control = |b: u8| (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f;
    !text.bytes().any(control)
        && (text.is_ascii()
            || text.chars().all(|c| {
                !matches!(c, '\u{80}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
            }))
}

/// One step of the path to the node being read.
#[derive(Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Whether the last string value read ends with a line break, and where the last such string is.
#[derive(Default)]
struct LastString {
    ends_with_newline: bool,
    newline_path: Option<Vec<Segment>>,
}

/// The next line that holds content, looking from the start of a line.
enum Line {
    End,
    /// `---` or `...` at the start of a line; `next` is where the following line starts.
    Marker {
        next: usize,
    },
    /// A line with content at column `indent`, starting at `start`.
    Content {
        start: usize,
        indent: usize,
    },
    /// A line the fast path does not read (a tab in the indentation, a directive, content
    /// after `---`). Nothing consumes it, so reading ends with `None` at the document's end.
    Unsupported,
}

/// Nesting deeper than this is left to the full parser (and its limits).
const MAX_DEPTH: usize = 256;

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// Where reading goes on: inside a line while a node is read, else the start of a line.
    pos: usize,
    path: Vec<Segment>,
    written_empty: Vec<FieldPath>,
    last_string: LastString,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn byte(&self, at: usize) -> u8 {
        self.bytes.get(at).copied().unwrap_or(b'\n')
    }

    fn line_end(&self, from: usize) -> usize {
        let from = from.min(self.bytes.len());
        memchr::memchr(b'\n', &self.bytes[from..]).map_or(self.bytes.len(), |i| from + i)
    }

    /// The first of `a` and `b` at or after `from` on its line, if any.
    fn find_on_line(&self, from: usize, a: u8, b: u8) -> Option<usize> {
        let line = &self.bytes[from.min(self.bytes.len())..];
        memchr::memchr3(a, b, b'\n', line)
            .map(|i| from + i)
            .filter(|&i| self.bytes[i] != b'\n')
    }

    /// The start of the line after the one `at` is in.
    fn next_line_start(&self, at: usize) -> usize {
        (self.line_end(at) + 1).min(self.bytes.len())
    }

    /// Skips blank and comment lines from the start of a line.
    fn next_line(&self, mut start: usize) -> Line {
        loop {
            if start >= self.bytes.len() {
                return Line::End;
            }
            let mut i = start;
            while self.byte(i) == b' ' {
                i += 1;
            }
            let indent = i - start;
            let mut j = i;
            while self.byte(j) == b'\t' || self.byte(j) == b' ' {
                j += 1;
            }
            match self.byte(j) {
                b'\n' | b'#' => {
                    start = self.next_line_start(j);
                    continue;
                }
                _ if j != i => return Line::Unsupported,
                _ => {}
            }
            if indent == 0 {
                let line = &self.bytes[start..self.line_end(start)];
                if line.starts_with(b"---") || line.starts_with(b"...") {
                    let rest = &line[3..];
                    let rest = rest.trim_ascii_start();
                    if rest.len() + 3 == line.len() && !rest.is_empty() {
                        // `---x`: content, not a marker.
                    } else if rest.is_empty() || rest.starts_with(b"#") {
                        return Line::Marker {
                            next: self.next_line_start(start),
                        };
                    } else {
                        // Content after `---` on the same line.
                        return Line::Unsupported;
                    }
                }
                if line.starts_with(b"%") {
                    return Line::Unsupported;
                }
            }
            return Line::Content { start, indent };
        }
    }

    /// A collection that starts a line at column `indent` (`pos` at its first character).
    fn block_node(&mut self, indent: usize) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = if self.at_sequence_entry(self.pos) {
            self.sequence(indent)
        } else if self.key_end(self.pos).is_some() {
            self.mapping(indent)
        } else {
            None
        };
        self.depth -= 1;
        value
    }

    /// The value of a key or `-` of a collection at column `parent` that starts the next line,
    /// at column `indent` (`pos` at its first character): a collection or a scalar.
    fn value_below(&mut self, indent: usize, parent: usize) -> Option<Value> {
        if self.at_sequence_entry(self.pos) || self.key_end(self.pos).is_some() {
            return self.block_node(indent);
        }
        if matches!(self.byte(self.pos), b'|' | b'>') {
            return None;
        }
        self.inline_value(parent)
    }

    fn at_sequence_entry(&self, at: usize) -> bool {
        self.byte(at) == b'-' && matches!(self.byte(at + 1), b' ' | b'\n')
    }

    /// A block sequence whose `-` are at column `indent`.
    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        loop {
            self.pos += 1;
            self.path.push(Segment::Index(items.len()));
            let item = self.sequence_item(indent)?;
            self.path.pop();
            items.push(item);
            match self.next_line(self.pos) {
                Line::Content { start, indent: n }
                    if n == indent && self.at_sequence_entry(start + n) =>
                {
                    self.pos = start + n;
                }
                _ => return Some(Value::Array(items)),
            }
        }
    }

    /// What follows a `-` (`pos` just after it).
    fn sequence_item(&mut self, indent: usize) -> Option<Value> {
        let column_of = |reader: &Self, at: usize| at - reader.line_start(at);
        self.skip_spaces()?;
        match self.byte(self.pos) {
            b'\n' | b'#' => {
                self.pos = self.next_line_start(self.pos);
                match self.next_line(self.pos) {
                    Line::Content { start, indent: n } if n > indent => {
                        self.pos = start + n;
                        self.value_below(n, indent)
                    }
                    _ => Some(Value::Null),
                }
            }
            b'-' if self.at_sequence_entry(self.pos) => {
                let column = column_of(self, self.pos);
                self.nested(|reader| reader.sequence(column))
            }
            _ if self.key_end(self.pos).is_some() => {
                let column = column_of(self, self.pos);
                self.nested(|reader| reader.mapping(column))
            }
            _ => self.inline_value(indent),
        }
    }

    fn nested(&mut self, read: impl FnOnce(&mut Self) -> Option<Value>) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = read(self);
        self.depth -= 1;
        value
    }

    fn line_start(&self, at: usize) -> usize {
        self.bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    }

    /// A block mapping whose keys are at column `indent` (`pos` at the first key).
    fn mapping(&mut self, indent: usize) -> Option<Value> {
        let mut map = Map::new();
        loop {
            let key = self.key()?;
            if map.contains_key(&key) {
                return None;
            }
            self.path.push(Segment::Key(key));
            let value = self.mapping_value(indent)?;
            let Some(Segment::Key(key)) = self.path.pop() else {
                return None;
            };
            map.insert(key, value);
            match self.next_line(self.pos) {
                Line::Content { start, indent: n } if n == indent => {
                    self.pos = start + n;
                    if self.at_sequence_entry(self.pos) {
                        return None;
                    }
                }
                Line::Content { indent: n, .. } if n > indent => return None,
                _ => return Some(Value::Object(map)),
            }
        }
    }

    /// The value after `key:` (`pos` just after the colon) in a mapping at column `indent`.
    fn mapping_value(&mut self, indent: usize) -> Option<Value> {
        self.skip_spaces()?;
        if matches!(self.byte(self.pos), b'\n' | b'#') {
            self.pos = self.next_line_start(self.pos);
            return match self.next_line(self.pos) {
                Line::Content { start, indent: n } if n > indent => {
                    self.pos = start + n;
                    self.value_below(n, indent)
                }
                Line::Content { start, indent: n }
                    if n == indent && self.at_sequence_entry(start + n) =>
                {
                    self.pos = start + n;
                    self.nested(|reader| reader.sequence(n))
                }
                _ => {
                    let path = self.path.iter().map(Segment::to_text).collect();
                    self.written_empty.push(path);
                    Some(Value::Null)
                }
            };
        }
        self.inline_value(indent)
    }

    /// A value that starts on the current line, in a collection at column `indent`.
    fn inline_value(&mut self, indent: usize) -> Option<Value> {
        let value = match self.byte(self.pos) {
            b'|' | b'>' => return self.block_scalar(indent),
            b'[' | b'{' => {
                let value = self.flow_node()?;
                self.end_of_line()?;
                value
            }
            b'"' | b'\'' => {
                let text = self.quoted(true)?;
                self.end_of_line()?;
                self.string(text)
            }
            _ => {
                let end = self.plain_end(self.pos);
                let first = &self.text[self.pos..end];
                if !plain_line_stands_alone(first) {
                    return None;
                }
                self.pos = end;
                let commented = self.byte(self.pos) != b'\n';
                self.end_of_line()?;
                let value = match (commented, self.plain_lines(first, indent)?) {
                    (false, Some(folded)) => plain_value(&folded)?,
                    _ => plain_value(first)?,
                };
                match value {
                    Value::String(s) => self.string(s),
                    other => other,
                }
            }
        };
        // Anything else continued on a deeper line is left to the parser.
        match self.next_line(self.pos) {
            Line::Content { indent: n, .. } if n > indent => None,
            _ => Some(value),
        }
    }

    /// The lines that continue a plain scalar of a collection at column `indent` (`pos` at the
    /// start of the line after its first), folded onto `first`; `pos` moves past them. `None`
    /// when a line is outside the subset (a comment, an indicator, a tab), `Some(None)` when
    /// no line continues it.
    fn plain_lines(&mut self, first: &str, indent: usize) -> Option<Option<String>> {
        let mut folded: Option<String> = None;
        let mut start = self.pos;
        let mut empty_lines = 0;
        while start < self.bytes.len() {
            let mut i = start;
            while self.byte(i) == b' ' {
                i += 1;
            }
            let mut j = i;
            while matches!(self.byte(j), b' ' | b'\t') {
                j += 1;
            }
            if self.byte(j) == b'\n' {
                empty_lines += 1;
                start = j + 1;
                continue;
            }
            if i - start <= indent || self.byte(i) == b'#' {
                break;
            }
            let end = self.plain_end(i);
            let line = &self.text[i..end];
            let commented = self.bytes[end..self.line_end(end)]
                .iter()
                .any(|b| !matches!(b, b' ' | b'\t'));
            if j != i || commented || !plain_line_stands_alone(line) {
                return None;
            }
            let text = folded.get_or_insert_with(|| first.to_string());
            if empty_lines == 0 {
                text.push(' ');
            } else {
                text.extend(std::iter::repeat_n('\n', empty_lines));
            }
            text.push_str(line);
            empty_lines = 0;
            start = self.next_line_start(end);
            self.pos = start;
        }
        Some(folded)
    }

    /// Notes a string value for the end-of-text rule, and wraps it.
    fn string(&mut self, text: String) -> Value {
        self.last_string.ends_with_newline = text.ends_with('\n');
        if self.last_string.ends_with_newline {
            self.last_string.newline_path = Some(self.path.clone());
        }
        Value::String(text)
    }

    /// Skips spaces after an indicator; a tab there is left to the full parser.
    fn skip_spaces(&mut self) -> Option<()> {
        while self.byte(self.pos) == b' ' {
            self.pos += 1;
        }
        (self.byte(self.pos) != b'\t').then_some(())
    }

    /// Past trailing spaces and a comment to the start of the next line; `None` if anything else
    /// is left on the line.
    fn end_of_line(&mut self) -> Option<()> {
        let start = self.pos;
        while matches!(self.byte(self.pos), b' ' | b'\t') {
            self.pos += 1;
        }
        match self.byte(self.pos) {
            b'\n' => {}
            b'#' if self.pos > start => {}
            _ => return None,
        }
        self.pos = self.next_line_start(self.pos);
        Some(())
    }

    /// Where a block plain scalar that starts at `from` ends: before ` #` or the line end, with
    /// trailing blanks trimmed.
    fn plain_end(&self, from: usize) -> usize {
        let mut end = self.line_end(from);
        let mut i = from;
        while let Some(hash) = self.find_on_line(i, b'#', b'#') {
            if hash > from && matches!(self.bytes[hash - 1], b' ' | b'\t') {
                end = hash;
                break;
            }
            i = hash + 1;
        }
        while end > from && matches!(self.bytes[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        end
    }

    /// Where the `:` of a block mapping key that starts at `from` is, if the line holds one.
    fn key_end(&self, from: usize) -> Option<usize> {
        let line_end = self.line_end(from);
        let mut i = from;
        match self.byte(from) {
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < line_end {
                    match self.bytes[i] {
                        b'\\' if quote == b'"' => i += 2,
                        b'\'' if quote == b'\'' && self.byte(i + 1) == b'\'' => i += 2,
                        b if b == quote => break,
                        _ => i += 1,
                    }
                }
                if i >= line_end {
                    return None;
                }
                i += 1;
                while self.byte(i) == b' ' {
                    i += 1;
                }
                (self.byte(i) == b':' && matches!(self.byte(i + 1), b' ' | b'\n')).then_some(i)
            }
            b'[' | b'{' | b'#' => None,
            _ => {
                while let Some(found) = self.find_on_line(i, b':', b'#') {
                    match self.bytes[found] {
                        b':' if matches!(self.byte(found + 1), b' ' | b'\n' | b'\t') => {
                            return Some(found);
                        }
                        b'#' if found > from && matches!(self.bytes[found - 1], b' ' | b'\t') => {
                            return None;
                        }
                        _ => i = found + 1,
                    }
                }
                None
            }
        }
    }

    /// A block mapping key (`pos` at it); leaves `pos` after its colon.
    fn key(&mut self) -> Option<String> {
        let colon = self.key_end(self.pos)?;
        let key = match self.byte(self.pos) {
            b'"' | b'\'' => self.quoted(false)?,
            _ => {
                let text = self.text[self.pos..colon].trim_end_matches([' ', '\t']);
                if !is_string_key(text) {
                    return None;
                }
                text.to_string()
            }
        };
        self.pos = colon + 1;
        Some(key)
    }

    /// A quoted scalar (`pos` at its opening quote); leaves `pos` after it. A `multi_line` one
    /// may go on over more lines, folded as YAML folds them (at any indentation: the parsers of
    /// kustomize and kfop accept lines less indented than their key, and manifests have them).
    fn quoted(&mut self, multi_line: bool) -> Option<String> {
        let quote = self.byte(self.pos);
        let mut out = String::new();
        let mut i = self.pos + 1;
        let mut run = i;
        loop {
            // Straight to the next character that means something inside the quotes.
            let special = if quote == b'"' {
                memchr::memchr3(b'"', b'\\', b'\n', &self.bytes[i..])
            } else {
                memchr::memchr2(b'\'', b'\n', &self.bytes[i..])
            };
            i = match special {
                Some(offset) => i + offset,
                None => return None,
            };
            match self.bytes[i] {
                b'\n' => {
                    // Blanks before a line break are not content.
                    out.push_str(self.text[run..i].trim_end_matches([' ', '\t']));
                    if !multi_line {
                        return None;
                    }
                    let (next, empty_lines) = self.continuation(i)?;
                    if empty_lines == 0 {
                        out.push(' ');
                    } else {
                        out.extend(std::iter::repeat_n('\n', empty_lines));
                    }
                    i = next;
                    run = i;
                }
                b'\'' if quote == b'\'' => {
                    out.push_str(&self.text[run..i]);
                    if self.byte(i + 1) == b'\'' {
                        out.push('\'');
                        i += 2;
                        run = i;
                    } else {
                        i += 1;
                        break;
                    }
                }
                b'"' if quote == b'"' => {
                    out.push_str(&self.text[run..i]);
                    i += 1;
                    break;
                }
                b'\\' if quote == b'"' && self.byte(i + 1) == b'\n' => {
                    // An escaped line break: no space, blanks before it kept.
                    out.push_str(&self.text[run..i]);
                    if !multi_line {
                        return None;
                    }
                    let (next, empty_lines) = self.continuation(i + 1)?;
                    out.extend(std::iter::repeat_n('\n', empty_lines));
                    i = next;
                    run = i;
                }
                b'\\' if quote == b'"' => {
                    out.push_str(&self.text[run..i]);
                    i = self.escape(i + 1, &mut out)?;
                    run = i;
                }
                _ => i += 1,
            }
        }
        self.pos = i;
        Some(out)
    }

    /// After a line break at `at` inside a quoted scalar: where its text goes on (past the
    /// next line's leading blanks) and how many empty lines came first. A document marker
    /// there is left to the parser.
    fn continuation(&self, at: usize) -> Option<(usize, usize)> {
        let mut start = at + 1;
        let mut empty_lines = 0;
        loop {
            if start >= self.bytes.len() {
                return None;
            }
            let mut i = start;
            while matches!(self.byte(i), b' ' | b'\t') {
                i += 1;
            }
            if self.byte(i) == b'\n' {
                empty_lines += 1;
                start = i + 1;
                continue;
            }
            let line = &self.bytes[start..];
            if line.starts_with(b"---") || line.starts_with(b"...") {
                return None;
            }
            return Some((i, empty_lines));
        }
    }

    /// Decodes the escape after a backslash at `at` into `out`; returns where the text goes on.
    fn escape(&self, at: usize, out: &mut String) -> Option<usize> {
        let simple = match self.byte(at) {
            b'0' => '\0',
            b'a' => '\u{7}',
            b'b' => '\u{8}',
            b't' | b'\t' => '\t',
            b'n' => '\n',
            b'v' => '\u{b}',
            b'f' => '\u{c}',
            b'r' => '\r',
            b'e' => '\u{1b}',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            b'x' | b'u' | b'U' => {
                let digits = match self.byte(at) {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = self.text.get(at + 1..at + 1 + digits)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                return Some(at + 1 + digits);
            }
            _ => return None,
        };
        out.push(simple);
        Some(at + 1)
    }

    /// A literal (`|`) or folded (`>`) block scalar (`pos` at the indicator) in a collection at
    /// column `indent`.
    fn block_scalar(&mut self, indent: usize) -> Option<Value> {
        let folded = self.byte(self.pos) == b'>';
        self.pos += 1;
        // The chomping and indentation indicators, in either order.
        let mut chomp = Chomp::Clip;
        let mut explicit_indent = None;
        for _ in 0..2 {
            match self.byte(self.pos) {
                b'-' if chomp == Chomp::Clip => chomp = Chomp::Strip,
                b'+' if chomp == Chomp::Clip => chomp = Chomp::Keep,
                digit @ b'1'..=b'9' if explicit_indent.is_none() => {
                    explicit_indent = Some(indent + usize::from(digit - b'0'));
                }
                _ => break,
            }
            self.pos += 1;
        }
        self.end_of_line()?;
        let mut lines: Vec<&str> = Vec::new();
        let mut content_indent = explicit_indent;
        let mut start = self.pos;
        let mut leading_blank_width = 0;
        // Line breaks after the last content line (each blank line that ends with one adds one).
        let mut trailing_breaks = 0;
        let mut last_content = None;
        while start < self.bytes.len() {
            let end = self.line_end(start);
            let line = &self.text[start..end];
            let spaces = line.len() - line.trim_start_matches(' ').len();
            let blank = spaces == line.len();
            match content_indent {
                None if blank => {
                    leading_blank_width = leading_blank_width.max(spaces);
                    lines.push("");
                }
                None => {
                    if spaces <= indent || leading_blank_width > spaces {
                        break;
                    }
                    content_indent = Some(spaces);
                    lines.push(&line[spaces..]);
                    last_content = Some(lines.len() - 1);
                }
                Some(width) if blank && spaces <= width => lines.push(""),
                Some(width) if spaces >= width => {
                    lines.push(&line[width..]);
                    last_content = Some(lines.len() - 1);
                }
                Some(_) => break,
            }
            if last_content == Some(lines.len() - 1) {
                trailing_breaks = usize::from(end < self.bytes.len());
            } else if end < self.bytes.len() {
                trailing_breaks += 1;
            }
            start = (end + 1).min(self.bytes.len());
        }
        self.pos = start;
        let Some(last) = last_content else {
            // Empty: nothing, whatever the chomping (kept line breaks are left to the parser).
            return (chomp != Chomp::Keep).then(|| self.string(String::new()));
        };
        let body = &lines[..=last];
        let mut text = String::new();
        if folded {
            let more_indented = |line: &str| line.starts_with([' ', '\t']);
            let mut previous: Option<&str> = None;
            let mut empties = 0;
            for line in body {
                if line.is_empty() {
                    empties += 1;
                    continue;
                }
                match previous {
                    None => text.extend(std::iter::repeat_n('\n', empties)),
                    Some(before) if !more_indented(before) && !more_indented(line) => {
                        if empties == 0 {
                            text.push(' ');
                        } else {
                            text.extend(std::iter::repeat_n('\n', empties));
                        }
                    }
                    Some(before) => {
                        // go-yaml (so kustomize and Kubernetes) keeps one more line break before
                        // a deeper line right after a normal one (`super::fold_like_go_yaml`).
                        let go_yaml = explicit_indent.is_none()
                            && empties == 0
                            && !before.starts_with(' ')
                            && line.starts_with(' ')
                            && !line.trim_start().is_empty();
                        text.extend(std::iter::repeat_n(
                            '\n',
                            empties + 1 + usize::from(go_yaml),
                        ));
                    }
                }
                text.push_str(line);
                previous = Some(line);
                empties = 0;
            }
        } else {
            for (i, line) in body.iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                text.push_str(line);
            }
        }
        match chomp {
            Chomp::Strip => {}
            Chomp::Clip if trailing_breaks > 0 => text.push('\n'),
            Chomp::Clip => {}
            Chomp::Keep => text.extend(std::iter::repeat_n('\n', trailing_breaks)),
        }
        Some(self.string(text))
    }

    /// A one-line flow collection or scalar inside one (`pos` at it).
    fn flow_node(&mut self) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = match self.byte(self.pos) {
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                // (`]` may also come after a trailing comma.)
                while !self.flow_closes(b']')? {
                    items.push(self.flow_node()?);
                    if self.flow_item_end(b']')? {
                        break;
                    }
                }
                Value::Array(items)
            }
            b'{' => {
                self.pos += 1;
                let mut map = Map::new();
                while !self.flow_closes(b'}')? {
                    let key = match self.byte(self.pos) {
                        b'"' | b'\'' => self.quoted(false)?,
                        _ => {
                            let end = self.flow_plain_end(self.pos);
                            let text = &self.text[self.pos..end];
                            if !is_string_key(text) {
                                return None;
                            }
                            self.pos = end;
                            text.to_string()
                        }
                    };
                    self.skip_flow_spaces()?;
                    if self.byte(self.pos) != b':' || !matches!(self.byte(self.pos + 1), b' ') {
                        return None;
                    }
                    self.pos += 1;
                    self.skip_flow_spaces()?;
                    if matches!(self.byte(self.pos), b',' | b'}') || map.contains_key(&key) {
                        return None;
                    }
                    let value = self.flow_node()?;
                    map.insert(key, value);
                    if self.flow_item_end(b'}')? {
                        break;
                    }
                }
                Value::Object(map)
            }
            b'"' | b'\'' => self.flow_string(|reader| reader.quoted(true))?,
            _ => {
                let end = self.flow_plain_end(self.pos);
                let text = &self.text[self.pos..end];
                if text.is_empty() || self.byte(end) == b':' {
                    return None;
                }
                self.pos = end;
                match plain_value(text)? {
                    Value::String(s) => self.flow_string(|_| Some(s))?,
                    other => other,
                }
            }
        };
        self.depth -= 1;
        Some(value)
    }

    /// A string inside a flow collection. One that ends with a line break would need its path
    /// for the end-of-text rule: that is left to the parser.
    fn flow_string(&mut self, read: impl FnOnce(&mut Self) -> Option<String>) -> Option<Value> {
        let text = read(self)?;
        if text.ends_with('\n') {
            return None;
        }
        self.last_string.ends_with_newline = false;
        Some(Value::String(text))
    }

    /// Before an item of a flow collection: whether `close` ends the collection there (and
    /// `pos` is past it).
    fn flow_closes(&mut self, close: u8) -> Option<bool> {
        self.skip_flow_spaces()?;
        let closes = self.byte(self.pos) == close;
        if closes {
            self.pos += 1;
        }
        Some(closes)
    }

    /// After an item of a flow collection: `true` past the `close` that ends it, `false` past
    /// a comma, `None` at anything else.
    fn flow_item_end(&mut self, close: u8) -> Option<bool> {
        self.skip_flow_spaces()?;
        let closes = match self.byte(self.pos) {
            b',' => false,
            b if b == close => true,
            _ => return None,
        };
        self.pos += 1;
        Some(closes)
    }

    /// Skips blanks, line breaks and comments between the parts of a flow collection; a
    /// document marker or the end of the text there is left to the parser.
    fn skip_flow_spaces(&mut self) -> Option<()> {
        loop {
            match self.byte(self.pos) {
                b' ' | b'\t' => self.pos += 1,
                b'#' if matches!(
                    self.bytes.get(self.pos.wrapping_sub(1)),
                    Some(b' ' | b'\t' | b'\n')
                ) =>
                {
                    self.pos = self.line_end(self.pos);
                }
                b'\n' if self.pos < self.bytes.len() => {
                    self.pos += 1;
                    let line = &self.bytes[self.pos..];
                    if line.starts_with(b"---") || line.starts_with(b"...") {
                        return None;
                    }
                }
                b'\n' => return None,
                _ => return Some(()),
            }
        }
    }

    /// Where a plain scalar inside a flow collection ends (trailing spaces trimmed).
    fn flow_plain_end(&self, from: usize) -> usize {
        let mut i = from;
        loop {
            match self.byte(i) {
                b'\n' | b',' | b'[' | b']' | b'{' | b'}' => break,
                b':' if matches!(self.byte(i + 1), b' ' | b',' | b']' | b'}' | b'\n') => break,
                b'#' if i > from && self.bytes[i - 1] == b' ' => break,
                _ => i += 1,
            }
        }
        while i > from && matches!(self.bytes[i - 1], b' ' | b'\t') {
            i -= 1;
        }
        i
    }
}

impl Segment {
    fn to_text(&self) -> String {
        match self {
            Segment::Key(key) => key.clone(),
            Segment::Index(i) => i.to_string(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Chomp {
    Strip,
    Clip,
    Keep,
}

/// Whether one line of a plain scalar holds nothing that makes it a key (`: `) or the parser
/// refuse it.
fn plain_line_stands_alone(line: &str) -> bool {
    !(line.contains(": ") || line.ends_with(':') || line.contains(":\t"))
}

/// Whether a plain key surely reads as this very string (not a number, boolean or null, whose
/// text the full parser would change).
fn is_string_key(text: &str) -> bool {
    let Some(&first) = text.as_bytes().first() else {
        return false;
    };
    let starts_well = first.is_ascii_alphabetic()
        || first == b'_'
        || first == b'/'
        || first == b'$'
        || first >= 0x80
        || (first == b'.' && text.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic));
    starts_well && !is_special_word(text.trim_start_matches('.'))
}

/// Words that YAML may read as something other than a string.
fn is_special_word(text: &str) -> bool {
    ["true", "false", "null", "inf", "nan"]
        .iter()
        .any(|word| text.eq_ignore_ascii_case(word))
}

/// The value of a plain scalar (trimmed, on one line); `None` when it may be something the
/// full parser reads otherwise (or refuses).
fn plain_value(text: &str) -> Option<Value> {
    let first = *text.as_bytes().first()?;
    match first {
        b'0'..=b'9' | b'-' | b'+' | b'.' => {
            if let Some(number) = simple_integer(text) {
                return Some(number);
            }
            let word = text.trim_start_matches(['-', '+']).trim_start_matches('.');
            if could_be_number(text) || is_special_word(word) {
                resolve_with_parser(text)
            } else {
                Some(Value::String(text.to_string()))
            }
        }
        b'a'..=b'z' | b'A'..=b'Z' if is_special_word(text) => resolve_with_parser(text),
        b'~' if text == "~" => Some(Value::Null),
        b'a'..=b'z'
        | b'A'..=b'Z'
        | b'_'
        | b'/'
        | b'$'
        | b'('
        | b')'
        | b'='
        | b'^'
        | b'\\'
        | b';'
        | b'~'
        | b'<' => Some(Value::String(text.to_string())),
        0x80.. => Some(Value::String(text.to_string())),
        _ => None,
    }
}

/// Whether a plain scalar may be a number in any of YAML's decimal, octal, hexadecimal, binary
/// or float forms (with `_` separators): only those characters, and at most one `.`. `100m`,
/// `2Gi`, `1.2.3` and `--port=80` are not (`.inf` and `.nan` are words, checked apart).
fn could_be_number(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_hexdigit() || b"xXoObB_.+-".contains(&b))
        && text.bytes().filter(|&b| b == b'.').count() <= 1
}

/// `0` or a decimal integer without a leading zero that fits an `i64` comfortably.
fn simple_integer(text: &str) -> Option<Value> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let simple = (digits == "0" || (!digits.starts_with('0') && digits.len() <= 18))
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !simple || text == "-0" {
        return None;
    }
    text.parse::<i64>().ok().map(Value::from)
}

/// A plain scalar the fast path cannot type by itself, typed by the full parser.
fn resolve_with_parser(text: &str) -> Option<Value> {
    match serde_saphyr::from_str_with_options::<Value>(text, super::options()).ok()? {
        Value::Array(_) | Value::Object(_) => None,
        scalar => Some(scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fast(text: &str) -> Vec<Value> {
        parse_stream(text)
            .expect("inside the subset")
            .into_iter()
            .map(|d| d.value)
            .collect()
    }

    #[test]
    fn reads_block_collections_and_scalars() {
        let text = "a: 1\nb:\n  c: x # note\n  d:\n  - e\n  - f: g\n    h: 'it''s'\nlist:\n- 1.5\n- \"q\\tz\"\n- [a, 'b', {c: 2}]\n";
        assert_eq!(
            fast(text),
            vec![json!({
                "a": 1,
                "b": {"c": "x", "d": ["e", {"f": "g", "h": "it's"}]},
                "list": [1.5, "q\tz", ["a", "b", {"c": 2}]]
            })]
        );
    }

    #[test]
    fn reads_block_scalars_with_chomping() {
        let text = "l: |\n  a\n\n   b\n\n\nf: >-\n  a\n  b\n\n  c\n   d\n  e\nk: |+\n  x\n\n";
        assert_eq!(
            fast(text),
            vec![json!({"l": "a\n\n b\n", "f": "a b\nc\n\n d\ne", "k": "x\n\n"})]
        );
    }

    #[test]
    fn notes_values_written_as_nothing() {
        let documents = parse_stream("a:\nb:\n  c:\n  d: 1\n---\n- e:\n").expect("subset");
        assert_eq!(documents[0].written_empty, vec![vec!["a"], vec!["b", "c"]]);
        assert_eq!(documents[1].written_empty, vec![vec!["0", "e"]]);
    }

    #[test]
    fn leaves_the_rest_to_the_parser() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "1: a\n",
            "a: 1\na: 2\n",
            "a:\n\t- b\n",
            "? a\n: b\n",
            "a: b: c\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: b\0c\n",
            "a: b\r\n",
            "\u{feff}a: b\n",
            "a: b\u{85}c\u{9f}\n",
        ] {
            assert!(parse_stream(text).is_none(), "{text:?}");
        }
        let deep = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
        assert!(parse_stream(&deep).is_none());
    }

    #[test]
    fn folds_scalars_over_lines_as_the_parser_does() {
        for text in [
            "a: b\n  c\n\n\n   d\ne: 1\n",
            "- b\n  c 1\n- 2\n  3\n",
            "kind\t\t: a\nflow: {x\t: y\t}\nx:\n  b\n  c\nk:\n  {}\nl: [m, n,]\na: [\"b\",\n  'c' , # note\n\n  {d: e}]\nf: |2-\n\n     g\n    h\n\ni: >-\n\nj: 1\n",
            "a: 'b\n  c'\n",
            "a: 'b  \n\n\n  c  d'\n",
            "a: \"b \\\n   c\\t\n\n d\"\n",
            "a:\n  b: '{\n  \"x\": 1\n}\n'\n  c: 2\n",
            "- \"x\n  y\" # note\n- z\n",
        ] {
            let full = super::super::parse_documents_fully(text).expect("parses");
            assert_eq!(fast(text), full, "{text:?}");
        }
    }

    #[test]
    fn types_plain_scalars_as_the_parser_does() {
        for text in [
            "0",
            "7",
            "-12",
            "007",
            "08",
            "0755",
            "1_000",
            "0x1F",
            "0o17",
            "0b101",
            "1.0",
            "1.",
            ".5",
            "1e3",
            "1.5e-3",
            "+1.5",
            "true",
            "True",
            "FALSE",
            "null",
            "~",
            "yes",
            "on",
            "NaN",
            "1.2.3",
            "-a",
            "12abc",
            "100m",
            "2Gi",
            "1:30",
            "9223372036854775808",
            "1e",
        ] {
            let document = format!("k: {text}\n");
            assert_eq!(
                fast(&document),
                vec![super::super::parse_document(&document).expect("parses")],
                "{text}"
            );
        }
    }

    /// Every YAML file of the real-world corpora and the fixtures: where the fast path reads a
    /// file, it reads what the full parser reads; and it reads nearly all of them.
    #[test]
    fn reads_the_corpora_as_the_full_parser_does() {
        let root = std::env::var_os("KFOP_CORPUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
            });
        let trees = [
            root.join("kubeflow-manifests-v1.0/tree"),
            root.join("kubeflow-manifests-v1.9.1/tree"),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        ];
        let required = ["KFOP_REQUIRE_INPUTS", "KFOP_REQUIRE_CLUSTER"]
            .iter()
            .any(|name| std::env::var(name).is_ok_and(|v| v == "1" || v == "true"));
        let mut files = Vec::new();
        for tree in &trees {
            if !tree.is_dir() {
                assert!(
                    !required,
                    "a required test input is missing: {}",
                    tree.display()
                );
                eprintln!("skipping {}: not found", tree.display());
                continue;
            }
            collect_yaml_files(tree, &mut files);
        }
        let (mut read, mut parsed, mut differ) = (0, 0, Vec::new());
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let folded = super::super::fold_like_go_yaml(&text);
            let Ok(full) = super::super::parse_documents_fully(&folded) else {
                assert!(parse_stream(&text).is_none(), "{}", file.display());
                continue;
            };
            parsed += 1;
            match super::super::fast_path_agrees(&text) {
                None => continue,
                Some(true) => read += 1,
                Some(false) => {
                    read += 1;
                    differ.push(file.display().to_string());
                }
            }
            // One document, as `parse_document` reads it.
            if full.len() == 1 && super::super::is_one_document(&folded) {
                let full_single =
                    serde_saphyr::from_str_with_options::<Value>(&folded, super::super::options());
                let fast_single = super::super::parse_document(&text);
                if full_single.is_err() || fast_single.ok().as_ref() != full.first() {
                    differ.push(format!("{} (one document)", file.display()));
                }
            }
        }
        assert!(
            differ.is_empty(),
            "{} files differ: {differ:#?}",
            differ.len()
        );
        eprintln!("fast path read {read} of {parsed} files");
        assert!(
            read * 10 >= parsed * 9,
            "fast path read only {read} of {parsed} files"
        );
    }

    fn collect_yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect_yaml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
}
