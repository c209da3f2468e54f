//! Message bodies are CommonMark (with strikethrough, tables and task
//! lists), rendered once when posted or edited. Rendering is safe by
//! construction: raw HTML in a body is shown as text, links keep only
//! `https:`, `http:` and `mailto:` targets (anything else, `javascript:`
//! included, stays text), and images become links, so a message never
//! loads anything by itself. pulldown-cmark escapes every text and
//! attribute it writes.

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd, html};

fn allowed(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
}

/// The HTML of a body.
pub fn render(body: &str) -> String {
    let options =
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    // Link ends must match their starts: a refused link's end goes too.
    let mut refused: Vec<bool> = Vec::new();
    let events = Parser::new_ext(body, options).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let ok = link_type == LinkType::Email || allowed(&dest_url);
            refused.push(!ok);
            ok.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let ok = allowed(&dest_url);
            refused.push(!ok);
            ok.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
            if refused.pop().unwrap_or(false) {
                None
            } else {
                Some(Event::End(TagEnd::Link))
            }
        }
        Event::InlineMath(text) | Event::DisplayMath(text) => Some(Event::Code(text)),
        other => Some(other),
    });
    let mut out = String::with_capacity(body.len() + body.len() / 2);
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markdown_renders() {
        assert_eq!(
            render("**bold** _it_"),
            "<p><strong>bold</strong> <em>it</em></p>\n"
        );
        assert!(render("- [x] done").contains("checkbox"));
        assert!(render("~~gone~~").contains("<del>gone</del>"));
    }

    #[test]
    fn raw_html_is_shown_not_run() {
        let html = render("<script>alert(1)</script> <img src=x onerror=alert(1)>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn only_safe_links_are_links() {
        let html = render("[x](javascript:alert(1)) [y](https://example.org \"t\") <mailto:a@b.c>");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.org\" title=\"t\">y</a>"),
            "{html}"
        );
        assert!(html.contains("mailto:a@b.c"), "{html}");
        let html = render("[z](JaVaScRiPt:alert(1)) [w](data:text/html,hi)");
        assert!(!html.contains("<a"), "{html}");
    }

    #[test]
    fn images_are_links_never_loaded() {
        let html = render("![cat](https://example.org/cat.png) ![bad](javascript:x)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.org/cat.png\">cat</a>"),
            "{html}"
        );
        assert!(!html.contains("javascript"), "{html}");
    }

    #[test]
    fn attributes_are_escaped() {
        let html = render("[q](https://example.org/\"onmouseover=\"alert(1))");
        assert!(!html.contains("\"onmouseover"), "{html}");
    }
}
