//! The comparison as text: an aligned terminal table ([`table`]), GitHub Markdown
//! ([`markdown`]: one table per function, then the whole app) or one self-contained HTML
//! page ([`html`]: inline CSS, no script, the targets side by side and stacked on a
//! narrow screen).

use super::model::{Comparison, Row};

/// The width of the terminal: `$COLUMNS`, else 160.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &usize| c >= 60)
        .unwrap_or(160)
}

/// A cell line without its code marks.
fn plain(line: &str) -> String {
    line.replace('`', "")
}

/// `text` broken into lines of at most `width` characters, at spaces when it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_owned();
        loop {
            let len = line.chars().count();
            let wlen = word.chars().count();
            let sep = usize::from(len > 0);
            if len + sep + wlen <= width {
                if sep == 1 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if len > 0 {
                out.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than the line: cut it.
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(head);
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// One block of the terminal table: a heading, then rows of wrapped cells.
fn table_block(out: &mut String, heading: &str, titles: &[&str], rows: &[Row], width: usize) {
    let aspect_w = rows
        .iter()
        .map(|r| r.aspect.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let n = titles.len().max(1);
    let col_w = (width.saturating_sub(aspect_w + 3 * n) / n).max(16);
    let rule = "-".repeat(aspect_w + n * (col_w + 3));
    out.push_str(heading);
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    let line = |out: &mut String, first: &str, cells: &[String]| {
        let mut s = format!("{first:<aspect_w$}");
        for c in cells {
            s.push_str(" | ");
            s.push_str(&format!("{c:<col_w$}"));
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    let titles: Vec<String> = titles.iter().map(|t| t.to_string()).collect();
    line(out, "", &titles);
    out.push_str(&rule);
    out.push('\n');
    for row in rows {
        let wrapped: Vec<Vec<String>> = row
            .cells
            .iter()
            .map(|cell| cell.iter().flat_map(|l| wrap(&plain(l), col_w)).collect())
            .collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        for i in 0..height {
            let cells: Vec<String> = wrapped
                .iter()
                .map(|c| c.get(i).cloned().unwrap_or_default())
                .collect();
            line(out, if i == 0 { row.aspect } else { "" }, &cells);
        }
        out.push_str(&rule);
        out.push('\n');
    }
    out.push('\n');
}

/// The comparison as aligned columns, at most about `width` characters wide.
pub fn table(c: &Comparison, width: usize) -> String {
    let titles: Vec<&str> = c.targets.iter().map(|t| t.title()).collect();
    let mut out = String::new();
    for f in &c.functions {
        table_block(
            &mut out,
            &format!("{} — {}", f.name, f.declared),
            &titles,
            &f.rows,
            width,
        );
    }
    table_block(
        &mut out,
        &format!("the whole app ({})", c.app),
        &titles,
        &c.app_rows,
        width,
    );
    out
}

/// A cell for a Markdown table: lines joined with `<br>`, `|` escaped.
fn markdown_cell(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.replace('|', "\\|"))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn markdown_table(out: &mut String, c: &Comparison, rows: &[Row]) {
    out.push_str("| |");
    for t in &c.targets {
        out.push_str(&format!(" {} |", t.title()));
    }
    out.push_str("\n|---|");
    for _ in &c.targets {
        out.push_str("---|");
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| **{}** |", row.aspect));
        for cell in &row.cells {
            out.push_str(&format!(" {} |", markdown_cell(cell)));
        }
        out.push('\n');
    }
}

/// The comparison as GitHub Markdown: a `###` section per function (its declaration,
/// then a table with an aspect per row and a target per column), then the whole app.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    for f in &c.functions {
        out.push_str(&format!(
            "### `{}`\n\nDeclared: {}.\n\n",
            f.name, f.declared
        ));
        markdown_table(&mut out, c, &f.rows);
        out.push('\n');
    }
    out.push_str(&format!("### The whole app (`{}`)\n\n", c.app));
    markdown_table(&mut out, c, &c.app_rows);
    out
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A cell line as HTML: escaped, `` `code` `` as `<code>`.
fn html_line(line: &str) -> String {
    line.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", escape(part))
            } else {
                escape(part)
            }
        })
        .collect()
}

/// The page's style: a grid of target columns, one column below 760 px.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;padding:1rem;line-height:1.4;color:#1d232a;background:#f6f7f9}
h1{font-size:1.5rem;margin:.2rem 0 .5rem}
h2{font-size:1.2rem;margin:2rem 0 .3rem;word-break:break-word}
p.declared{margin:.2rem 0 .8rem;color:#4a5560}
.targets{display:grid;grid-template-columns:repeat(var(--n),minmax(0,1fr));gap:.75rem}
.target{background:#fff;border:1px solid #d5dae0;border-radius:8px;padding:.6rem .8rem;min-width:0}
.target h3{font-size:1rem;margin:0 0 .4rem;padding-bottom:.3rem;border-bottom:3px solid var(--accent)}
.local{--accent:#6b7785}.aws{--accent:#ff9900}.azure{--accent:#0078d4}.gcp{--accent:#34a853}
dl{margin:0}dt{font-weight:600;font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:#4a5560;margin-top:.5rem}
dd{margin:.1rem 0 0;font-size:.9rem;overflow-wrap:anywhere}
dd div+div{margin-top:.15rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.82rem;background:#eef1f4;padding:0 .2rem;border-radius:3px}
h2 code{font-size:inherit;background:none;padding:0}
@media (max-width:760px){.targets{grid-template-columns:1fr}body{padding:.6rem}}";

fn html_section(
    out: &mut String,
    c: &Comparison,
    id: &str,
    heading: &str,
    note: &str,
    rows: &[Row],
) {
    out.push_str(&format!(
        "<section id=\"{}\">\n<h2>{heading}</h2>\n",
        escape(id)
    ));
    if !note.is_empty() {
        out.push_str(&format!("<p class=\"declared\">{}</p>\n", html_line(note)));
    }
    out.push_str(&format!(
        "<div class=\"targets\" style=\"--n:{}\">\n",
        c.targets.len()
    ));
    for (i, t) in c.targets.iter().enumerate() {
        out.push_str(&format!(
            "<div class=\"target {}\">\n<h3>{}</h3>\n<dl>\n",
            t.name(),
            escape(t.title())
        ));
        for row in rows {
            out.push_str(&format!("<dt>{}</dt>\n<dd>", escape(row.aspect)));
            for line in row.cells.get(i).into_iter().flatten() {
                out.push_str(&format!("<div>{}</div>", html_line(line)));
            }
            out.push_str("</dd>\n");
        }
        out.push_str("</dl>\n</div>\n");
    }
    out.push_str("</div>\n</section>\n");
}

/// The comparison as one HTML page: no external asset and no script; the targets are
/// columns side by side, one below the other on a narrow (phone) screen.
pub fn html(c: &Comparison) -> String {
    let mut out = String::new();
    let title = format!("{}: one app, every target", c.app);
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    ));
    out.push_str(&format!(
        "<p>What each function of <code>{}</code> becomes on {}. Generated by <code>cargo xtask compare --format html</code> from the descriptors <code>cargo xtask package</code> renders.</p>\n",
        escape(&c.app),
        escape(
            &c.targets
                .iter()
                .map(|t| t.title())
                .collect::<Vec<_>>()
                .join(", ")
        )
    ));
    for f in &c.functions {
        html_section(
            &mut out,
            c,
            &format!("fn-{}", f.name),
            &format!("<code>{}</code>", escape(&f.name)),
            &format!("Declared: {}.", f.declared),
            &f.rows,
        );
    }
    html_section(
        &mut out,
        c,
        "app",
        &format!("The whole app (<code>{}</code>)", escape(&c.app)),
        "",
        &c.app_rows,
    );
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("one two three", 7), ["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }

    #[test]
    fn compare_html_lines_escape_and_mark_code() {
        assert_eq!(
            html_line("a <b> `x & y` c"),
            "a &lt;b&gt; <code>x &amp; y</code> c"
        );
        assert_eq!(markdown_cell(&["a|b".into(), "c".into()]), "a\\|b<br>c");
    }
}
