//! What an admin command answers, rendered three ways: Markdown (`body`) and HTML
//! (`formatted_body`) for the admin room, plain text for the console.

use std::fmt::Write;

/// One part of an answer.
#[derive(Debug, Clone)]
pub enum Block {
    /// A paragraph; text between backticks is code.
    Text(String),
    /// Preformatted text: help, configuration.
    Code(String),
    /// A table, for lists.
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A command's answer: whether it succeeded, and what it says.
#[derive(Debug, Clone)]
pub struct Answer {
    pub ok: bool,
    pub blocks: Vec<Block>,
}

impl Answer {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            blocks: vec![Block::Text(text.into())],
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            blocks: vec![Block::Text(text.into())],
        }
    }

    pub fn with(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            match block {
                Block::Text(text) => out.push_str(text),
                Block::Code(code) => {
                    let _ = write!(out, "```\n{}\n```", code.trim_end());
                }
                Block::Table { head, rows } => {
                    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
                    let line = |cells: &[String]| {
                        let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
                        format!("| {} |", cells.join(" | "))
                    };
                    out.push_str(&line(head));
                    out.push('\n');
                    out.push_str(&line(&vec!["---".to_owned(); head.len()]));
                    for row in rows {
                        out.push('\n');
                        out.push_str(&line(row));
                    }
                }
            }
        }
        out
    }

    pub fn html(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            match block {
                Block::Text(text) => {
                    let _ = write!(out, "<p>{}</p>", inline_html(text));
                }
                Block::Code(code) => {
                    let _ = write!(out, "<pre><code>{}</code></pre>", escape(code.trim_end()));
                }
                Block::Table { head, rows } => {
                    out.push_str("<table>");
                    // A key–value table has no headings: no empty heading row in Element.
                    if head.iter().any(|cell| !cell.is_empty()) {
                        out.push_str("<thead><tr>");
                        for cell in head {
                            let _ = write!(out, "<th>{}</th>", escape(cell));
                        }
                        out.push_str("</tr></thead>");
                    }
                    out.push_str("<tbody>");
                    for row in rows {
                        out.push_str("<tr>");
                        for cell in row {
                            let _ = write!(out, "<td>{}</td>", escape(cell));
                        }
                        out.push_str("</tr>");
                    }
                    out.push_str("</tbody></table>");
                }
            }
        }
        out
    }

    /// For the console: text as it is, tables in aligned columns.
    pub fn plain(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            if !out.is_empty() {
                out.push('\n');
            }
            match block {
                Block::Text(text) => out.push_str(&text.replace('`', "")),
                Block::Code(code) => out.push_str(code.trim_end()),
                Block::Table { head, rows } => {
                    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
                    for row in rows {
                        for (width, cell) in widths.iter_mut().zip(row) {
                            *width = (*width).max(cell.chars().count());
                        }
                    }
                    for cells in std::iter::once(head).chain(rows) {
                        let line: Vec<String> = cells
                            .iter()
                            .zip(&widths)
                            .map(|(cell, width)| format!("{cell:width$}"))
                            .collect();
                        out.push_str(line.join("  ").trim_end());
                        out.push('\n');
                    }
                }
            }
        }
        out.trim_end().to_owned()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escapes `text` and turns `code` spans into `<code>`.
fn inline_html(text: &str) -> String {
    let mut out = String::new();
    for (index, part) in text.split('`').enumerate() {
        if index % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
        } else {
            out.push_str(&escape(part).replace('\n', "<br>"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Answer, Block};

    #[test]
    fn renders_three_ways() {
        let answer = Answer::ok("Created `@bob:x` <now>").with(Block::Table {
            head: vec!["user".into(), "admin".into()],
            rows: vec![vec!["@bob:x".into(), "a|b".into()]],
        });
        assert_eq!(
            answer.markdown(),
            "Created `@bob:x` <now>\n\n| user | admin |\n| --- | --- |\n| @bob:x | a\\|b |"
        );
        assert_eq!(
            answer.html(),
            "<p>Created <code>@bob:x</code> &lt;now&gt;</p><table><thead><tr><th>user</th>\
             <th>admin</th></tr></thead><tbody><tr><td>@bob:x</td><td>a|b</td></tr></tbody></table>"
        );
        assert_eq!(
            answer.plain(),
            "Created @bob:x <now>\nuser    admin\n@bob:x  a|b"
        );
    }
}
