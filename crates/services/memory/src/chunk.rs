//! Splitting a document into the chunks that are embedded and searched:
//! by structure first (a markdown heading starts a section, a blank line a
//! paragraph), then by size — paragraphs of one section are packed up to
//! [`Limits::max_chars`]; a longer paragraph is cut between sentences (or,
//! for a sentence longer still, between words), and each cut chunk begins
//! with the last sentence of the one before it when that fits in
//! [`Limits::overlap_chars`], so an idea on a boundary is in both.

use serde::{Deserialize, Serialize};

/// How a document's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormat {
    Text,
    Markdown,
}

impl DocumentFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentFormat::Text => "text",
            DocumentFormat::Markdown => "markdown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(DocumentFormat::Text),
            "markdown" => Some(DocumentFormat::Markdown),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_chars: usize,
    pub overlap_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // About 250 tokens of English: within the encoder's 512-piece
        // window with room for the heading, and small enough that a match
        // points at the passage rather than the page.
        Self {
            max_chars: 1000,
            overlap_chars: 200,
        }
    }
}

/// One piece of a document: the headings it sits under (outermost first,
/// joined by " › ") and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub heading: String,
    pub text: String,
}

impl Chunk {
    /// What is embedded: the heading gives a paragraph its context.
    pub fn for_embedding(&self) -> String {
        if self.heading.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n{}", self.heading, self.text)
        }
    }
}

/// The chunks of `body`, in order; none for a body of only whitespace.
pub fn split(body: &str, format: DocumentFormat, limits: Limits) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for (heading, paragraphs) in sections(body, format) {
        let mut current = String::new();
        for paragraph in paragraphs {
            if !current.is_empty() && current.len() + 2 + paragraph.len() <= limits.max_chars {
                current.push_str("\n\n");
                current.push_str(&paragraph);
                continue;
            }
            if !current.is_empty() {
                chunks.push(Chunk {
                    heading: heading.clone(),
                    text: std::mem::take(&mut current),
                });
            }
            if paragraph.len() <= limits.max_chars {
                current = paragraph;
            } else {
                let mut pieces = cut(&paragraph, limits);
                current = pieces.pop().unwrap_or_default();
                chunks.extend(pieces.into_iter().map(|text| Chunk {
                    heading: heading.clone(),
                    text,
                }));
            }
        }
        if !current.is_empty() {
            chunks.push(Chunk {
                heading: heading.clone(),
                text: current,
            });
        }
    }
    chunks
}

/// The body's sections: each heading path with its paragraphs (trimmed,
/// non-empty). A fenced code block is one paragraph, its blank lines and
/// `#` lines included.
fn sections(body: &str, format: DocumentFormat) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut fenced = false;
    let flush = |paragraph: &mut Vec<&str>, out: &mut Vec<(String, Vec<String>)>| {
        let text = paragraph.join("\n").trim().to_owned();
        paragraph.clear();
        if let Some((_, paragraphs)) = out.last_mut().filter(|_| !text.is_empty()) {
            paragraphs.push(text);
        }
    };
    for line in body.lines() {
        let markdown = format == DocumentFormat::Markdown;
        if markdown && line.trim_start().starts_with("```") {
            fenced = !fenced;
            paragraph.push(line);
            continue;
        }
        if fenced {
            paragraph.push(line);
            continue;
        }
        if let Some((level, title)) = markdown.then(|| heading(line)).flatten() {
            flush(&mut paragraph, &mut out);
            path.retain(|(l, _)| *l < level);
            path.push((level, title.to_owned()));
            let joined = path
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" › ");
            out.push((joined, Vec::new()));
        } else if line.trim().is_empty() {
            flush(&mut paragraph, &mut out);
        } else {
            paragraph.push(line);
        }
    }
    flush(&mut paragraph, &mut out);
    out.retain(|(_, paragraphs)| !paragraphs.is_empty());
    out
}

/// An ATX heading (`# Title` to `###### Title`): its level and title.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim();
    (!title.is_empty()).then_some((level, title))
}

/// A paragraph longer than the limit, cut into pieces that fit, between
/// sentences where it can, each after the first opening with the last
/// sentence of the piece before when that is short enough.
fn cut(paragraph: &str, limits: Limits) -> Vec<String> {
    let mut units: Vec<&str> = Vec::new();
    for sentence in sentences(paragraph) {
        if sentence.len() <= limits.max_chars {
            units.push(sentence);
        } else {
            units.extend(words(sentence, limits.max_chars));
        }
    }
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut last = "";
    for unit in units {
        if !current.is_empty() && current.len() + 1 + unit.len() > limits.max_chars {
            pieces.push(std::mem::take(&mut current));
            if last.len() <= limits.overlap_chars && last.len() + 1 + unit.len() <= limits.max_chars
            {
                current.push_str(last);
            }
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(unit);
        last = unit;
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Sentences: cut after `.`, `!`, `?` or `…` followed by whitespace, and
/// at line breaks.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = match c {
            '\n' => true,
            '.' | '!' | '?' | '…' => chars.peek().is_some_and(|(_, n)| n.is_whitespace()),
            _ => false,
        };
        if ends {
            let end = i + c.len_utf8();
            let sentence = text[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// A sentence too long for one chunk, cut between words (or, for a word
/// longer than `max`, at a character boundary).
fn words(sentence: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = sentence.trim();
    while rest.len() > max {
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let cut_at = rest[..end].rfind(char::is_whitespace).filter(|&i| i > 0);
        let at = cut_at.unwrap_or(end);
        out.push(rest[..at].trim_end());
        rest = rest[at..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_chars: 70,
            overlap_chars: 40,
        }
    }

    #[test]
    fn headings_make_sections_and_paths() {
        let body = "Intro line.\n\n# Budget\n\nWe spend on seeds.\n\n## 2026\n\nCapped at 300.\n\n# Garden\n\nWater daily.";
        let chunks = split(body, DocumentFormat::Markdown, Limits::default());
        let got: Vec<(&str, &str)> = chunks
            .iter()
            .map(|c| (c.heading.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("", "Intro line."),
                ("Budget", "We spend on seeds."),
                ("Budget › 2026", "Capped at 300."),
                ("Garden", "Water daily."),
            ]
        );
        assert_eq!(chunks[2].for_embedding(), "Budget › 2026\nCapped at 300.");
    }

    #[test]
    fn plain_text_keeps_hashes_and_packs_paragraphs() {
        let chunks = split(
            "# not a heading\n\nsecond",
            DocumentFormat::Text,
            Limits::default(),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "# not a heading\n\nsecond");
        assert!(split(" \n\n\t", DocumentFormat::Markdown, Limits::default()).is_empty());
        assert_eq!(heading("#hashtag"), None);
        assert_eq!(heading("### Closed ###"), Some((3, "Closed")));
    }

    #[test]
    fn a_code_fence_is_one_paragraph() {
        let body = "# Setup\n\n```sh\n# install\n\nrun it\n```\n\nDone.";
        let chunks = split(body, DocumentFormat::Markdown, Limits::default());
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].heading, "Setup");
        assert!(
            chunks[0]
                .text
                .starts_with("```sh\n# install\n\nrun it\n```")
        );
    }

    #[test]
    fn long_paragraphs_are_cut_between_sentences_with_overlap() {
        let body = "One short sentence here. Another sentence follows it now. A third one closes the paragraph. Last bit.";
        let chunks = split(body, DocumentFormat::Text, small());
        assert_eq!(chunks.len(), 3, "{chunks:?}");
        for chunk in &chunks {
            assert!(chunk.text.len() <= 70, "{:?}", chunk.text);
        }
        // Each cut chunk opens with the sentence the one before ended on.
        for pair in chunks.windows(2) {
            let last = sentences(&pair[0].text).pop().unwrap_or_default();
            assert!(pair[1].text.starts_with(last), "{pair:?}");
        }
        let all: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert!(all.contains("Last bit."));
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_cut_between_words() {
        let long = "слово ".repeat(40);
        let chunks = split(&long, DocumentFormat::Text, small());
        assert!(chunks.len() > 2);
        for chunk in &chunks {
            assert!(chunk.text.len() <= 70);
            assert!(chunk.text.split(' ').all(|w| w == "слово"), "{chunk:?}");
        }
        let word = "я".repeat(100);
        for piece in words(&word, 61) {
            assert!(piece.len() <= 61 && !piece.is_empty());
        }
    }
}
