use super::*;
use serde_json::json;

fn render(src: &str, output: Output, item: Value) -> Result<String, String> {
    let mut t = Templates::new();
    let r = t.add_as("steps[1].send_email.subject", src, output).unwrap();
    t.render(&r, &json!({ "item": item })).map_err(|e| e.0)
}

const LINK: &str = r#"<a href="https://x.test/r?a=1&b=2&t={{item.t}}">{{item.label}}</a> {{item.url}}"#;

fn link_item() -> Value {
    json!({"t": "k=v", "label": "Tom & Jerry", "url": "https://x.test/r?a=1&b=2"})
}

#[test]
fn html_keeps_urls_working_and_escapes_only_five_characters() {
    let h = render(LINK, Output::Html, link_item()).unwrap();
    // The query string of the template is left alone and `=` in a value is not `&#x3D;`; `&` in
    // a value is `&amp;`, which a browser reads back as `&` inside an attribute too.
    assert_eq!(h, r#"<a href="https://x.test/r?a=1&b=2&t=k=v">Tom &amp; Jerry</a> https://x.test/r?a=1&amp;b=2"#);
    let h = render(r#"<a href="{{item.url}}">x</a>"#, Output::Html, link_item()).unwrap();
    assert_eq!(h, r#"<a href="https://x.test/r?a=1&amp;b=2">x</a>"#);
    let h = render("{{item.x}}", Output::Html, json!({"x": "<script>alert('x\"y')</script> `a=b`"})).unwrap();
    assert_eq!(h, "&lt;script&gt;alert(&#39;x&quot;y&#39;)&lt;/script&gt; `a=b`");
}

/// NUL, ESC, DEL and C1 controls never reach an HTML part; tab and line ends do, and so does
/// the text part, which is delivered as the record wrote it.
#[test]
fn html_drops_control_characters_but_tabs_and_line_ends() {
    let x = "a\u{0}b\u{1b}[2J\u{1b}]0;t\u{7}c\u{7f}\u{85}\u{9f}d\te\r\nf\u{c}g";
    assert_eq!(render("{{item.x}}", Output::Html, json!({ "x": x })).unwrap(), "ab[2J]0;tcd\te\r\nfg");
    assert_eq!(render("<p title=\"{{item.x}}\">", Output::Html, json!({"x": "\u{0}\"<"})).unwrap(), "<p title=\"&quot;&lt;\">");
    assert_eq!(render("{{item.x}}", Output::Text, json!({ "x": x })).unwrap(), x);
}

#[test]
fn text_and_header_leave_values_as_they_are() {
    for o in [Output::Text, Output::Header] {
        let s = render(LINK, o, link_item()).unwrap();
        assert_eq!(s, r#"<a href="https://x.test/r?a=1&b=2&t=k=v">Tom & Jerry</a> https://x.test/r?a=1&b=2"#, "{o:?}");
        let s = render("{{item.x}}", o, json!({"x": "<script>*x* [a](b) `c`</script>"})).unwrap();
        assert_eq!(s, "<script>*x* [a](b) `c`</script>", "{o:?}");
    }
}

#[test]
fn markdown_escapes_markup_in_values_and_keeps_urls_readable() {
    let m = render("[{{item.label}}]({{item.url}})", Output::Markdown, link_item()).unwrap();
    assert_eq!(m, "[Tom & Jerry](https://x.test/r?a=1&b=2)");
    let m =
        render("- {{item.x}}", Output::Markdown, json!({"x": "<script>*bold* [click](http://evil.test) `rm -rf` ~~no~~ a|b_c\\d\nnext"}))
            .unwrap();
    assert_eq!(m, "- \\<script\\>\\*bold\\* \\[click\\](http://evil.test) \\`rm -rf\\` \\~\\~no\\~\\~ a\\|b\\_c\\\\d next");
    // At a line start a value must not become a heading, a list or a rule; numbers stay numbers.
    for (v, want) in
        [("# big", "\\# big"), ("- x", "\\- x"), ("1. x", "1\\. x"), ("---", "\\---"), ("-5", "-5"), ("4.5", "4.5"), ("2024.", "2024\\.")]
    {
        assert_eq!(render("{{item.x}}", Output::Markdown, json!({"x": v})).unwrap(), want, "{v}");
    }
}

#[test]
fn markdown_escaping_neutralizes_markup() {
    assert_eq!(escape_markdown("<script>*x*</script>"), "\\<script\\>\\*x\\*\\</script\\>");
    assert_eq!(escape_markdown("[a](http://x)\nnext & more"), "\\[a\\](http://x) next & more");
}

#[test]
fn a_line_break_in_a_header_is_refused() {
    let e = render("{{item.name}} <{{item.email}}>", Output::Header, json!({"name": "Eve\r\nBcc: all@x.test", "email": "eve@x.test"}))
        .unwrap_err();
    assert_eq!(
        e,
        r#"`steps[1].send_email.subject` contains a line break ("Eve\r\nBcc: all@x.test <eve@x.test>"); refusing to send (header injection): a header must be one line, remove the line break from the data"#
    );
    assert!(render("{{item.x}}", Output::Header, json!({"x": "a\u{0}b"})).is_err());
    assert_eq!(render("{{item.x}}", Output::Header, json!({"x": "a\tb"})).unwrap(), "a\tb");
    // The same value is fine in a body.
    assert!(render("{{item.x}}", Output::Text, json!({"x": "a\r\nb"})).is_ok());
}

#[test]
fn record_text_in_an_error_is_escaped_and_cut() {
    assert_eq!(quote_data("Eve\r\nBcc: x"), r#""Eve\r\nBcc: x""#);
    assert_eq!(quote_data("\u{1b}[2J\u{0}\u{202e}\"\\"), r#""\u{1b}[2J\0\u{202e}\"\\""#);
    let eighty = "é".repeat(80);
    assert_eq!(quote_data(&eighty), format!("\"{eighty}\""), "80 characters are shown whole");
    let big = format!("Eve\r\n{}", "é".repeat(1 << 19));
    assert_eq!(quote_data(&big), format!("\"Eve\\r\\n{}\"… (1048581 bytes)", "é".repeat(75)));
}

/// A refused header quotes 80 characters of a 1 MB field, not the field.
#[test]
fn a_huge_header_value_with_a_line_break_makes_a_short_error() {
    let name = format!("Eve\r\nBcc: all@x.test {}", "x".repeat(1 << 20));
    let e = render("{{item.name}}", Output::Header, json!({ "name": name })).unwrap_err();
    assert_eq!(
        e,
        format!(
            r#"`steps[1].send_email.subject` contains a line break ("Eve\r\nBcc: all@x.test {}"… (1048597 bytes)); refusing to send (header injection): a header must be one line, remove the line break from the data"#,
            "x".repeat(59)
        )
    );
}

#[test]
fn a_missing_field_has_one_message_everywhere() {
    let want = "`item.email` is missing in `steps[1].send_email.subject` (line 1, col 4): this record or context has no such field; fix the data, or, where a missing field `item.email` is normal, write `{{default item.email \"...\"}}`";
    for o in [Output::Text, Output::Html, Output::Markdown, Output::Header] {
        assert_eq!(render("Hi {{item.email}}", o, json!({})).unwrap_err(), want, "{o:?}");
        // Through a helper, too; `default` is the way to allow it.
        let e = render("Hi {{upper item.email}}", o, json!({})).unwrap_err();
        assert!(e.starts_with("`item.email` is missing in `steps[1].send_email.subject`"), "{o:?}: {e}");
        assert_eq!(render("Hi {{default item.email \"there\"}}", o, json!({})).unwrap(), "Hi there");
    }
}

#[test]
fn a_missing_field_in_a_partial_names_the_partial() {
    let mut t = Templates::new();
    t.add_partial("footer", "--\n{{item.company}}", &[Output::Text, Output::Html]).unwrap();
    let r = t.add_as("follow_up.txt.hbs", "Hi\n{{> footer}}", Output::Text).unwrap();
    let e = t.render(&r, &json!({"item": {}})).unwrap_err().0;
    assert!(e.starts_with("`item.company` is missing in `footer` (line 2, col 1)"), "{e}");
}

#[test]
fn every_output_has_the_same_helpers() {
    let item = json!({"n": "a&b", "d": "2024-03-05", "c": 2, "x": 0.5});
    let src = "{{upper item.n}} {{date item.d \"%d %B\"}} {{pluralize item.c \"ticket\"}} {{inc 1}}{{change item.x \"\"}}";
    assert_eq!(render(src, Output::Text, item.clone()).unwrap(), "A&B 05 March tickets 2 (+0.5 since the previous digest)");
    assert_eq!(render(src, Output::Html, item.clone()).unwrap(), "A&amp;B 05 March tickets 2 (+0.5 since the previous digest)");
    assert_eq!(render(src, Output::Markdown, item).unwrap(), "A&B 05 March tickets 2 (+0.5 since the previous digest)");
}

#[test]
fn strict_mode_names_the_missing_field() {
    let mut t = Templates::new();
    let r = t.add("s", "Hi {{item.name}}").unwrap();
    assert_eq!(t.render(&r, &json!({"item": {"name": "Ann & Bo"}})).unwrap(), "Hi Ann & Bo");
    let e = t.render(&r, &json!({"item": {}})).unwrap_err();
    assert!(e.0.contains("`item.name` is missing"), "{}", e.0);
}

#[test]
fn conditions() {
    let mut t = Templates::new();
    let r = t.add("c", "{{eq item.status 'spam'}}").unwrap();
    assert!(t.truthy(&r, &json!({"item": {"status": "spam"}})).unwrap());
    assert!(!t.truthy(&r, &json!({"item": {"status": "ok"}})).unwrap());
    assert!(!is_truthy(" No "));
}

#[test]
fn syntax_error_is_one_line() {
    let mut t = Templates::new();
    let e = t.add("s", "Hi {{item.name").unwrap_err();
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn an_unknown_helper_at_render_time_is_named_with_the_available_ones() {
    let e = render("Hi {{shout item.name}}", Output::Text, json!({"name": "x"})).unwrap_err();
    assert_eq!(
        e,
        "unknown helper `shout` in template `steps[1].send_email.subject` (line 1, col 4): the helpers are: date, default, pluralize, pluralise, upper, uppercase, lower, lowercase, trim, json, change, inc, if, unless, each, with, lookup, log, eq, ne, gt, gte, lt, lte, and, or, not, len"
    );
}

/// `{{#each}}` three deep over 200 rows: 8 million writes, many seconds of work.
fn slow_template() -> (Templates, TemplateRef, Value) {
    let mut t = Templates::new();
    let src = "{{#each item.rows}}{{#each @root.item.rows}}{{#each @root.item.rows}}.{{/each}}{{/each}}{{/each}}";
    let r = t.add("steps[1].command[2]", src).unwrap();
    (t, r, json!({"item": {"rows": (0..200).collect::<Vec<u32>>()}}))
}

// One worker: without moving off it, the ticker could not run while the template renders.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_render_stops_at_the_steps_deadline_and_the_runtime_goes_on_meanwhile() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ticks = std::sync::Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let (t, r, ctx) = slow_template();
    // Spawned, so that it renders on the one worker (the test's own future is not on it).
    let render = tokio::spawn({
        let ticks = ticks.clone();
        with_deadline(std::time::Duration::from_millis(300), async move {
            let before = ticks.load(Ordering::Relaxed);
            let e = t.render(&r, &ctx).unwrap_err();
            (e, ticks.load(Ordering::Relaxed) - before)
        })
    });
    let (e, during) = render.await.unwrap();
    ticker.abort();
    assert_eq!(
        e.0,
        "rendering `steps[1].command[2]` took longer than the step's timeout (300ms): the template does too much for this record (an `#each` inside an `#each` over a long list?); make it do less, or raise the step's `timeout:`"
    );
    assert!(during > 0, "the runtime was blocked while the template rendered");
}

/// A text without `{{` renders as itself in every output, the way handlebars renders it, without
/// a handlebars registry; a header that spans lines is still refused, and the same name added
/// again as a real template is one.
#[test]
fn plain_text_renders_as_itself_without_a_registry() {
    let plain = "data/tickets & *notes* <b> \\ } {x}.csv";
    let mut t = Templates::new();
    for o in [Output::Text, Output::Html, Output::Markdown, Output::Header] {
        let r = t.add_as(&format!("plain.{o:?}"), plain, o).unwrap();
        assert_eq!(t.render(&r, &json!({})).unwrap(), plain, "{o:?}");
        assert_eq!(t.reads_of(&r), Reads::none());
    }
    assert!(t.text.is_none() && t.html.is_none() && t.markdown.is_none(), "a registry was made for plain text");
    let r = t.add_as("subject", "line one\nline two", Output::Header).unwrap();
    assert!(t.render(&r, &json!({})).unwrap_err().0.contains("subject"));
    let r = t.add_as("path", "out/{{item.id}}.csv", Output::Text).unwrap();
    assert_eq!(t.render(&r, &json!({"item": {"id": 7}})).unwrap(), "out/7.csv");
    // Handlebars renders the same text the same way.
    let mut hb = handlebars::Handlebars::new();
    hb.register_template_string("p", plain).unwrap();
    assert_eq!(hb.render("p", &json!({})).unwrap(), plain);
}

/// A plan's template set is in every scheduled workflow: small while it has no registry.
#[test]
fn an_empty_template_set_is_small() {
    assert!(std::mem::size_of::<Templates>() <= 128, "{} bytes", std::mem::size_of::<Templates>());
}
