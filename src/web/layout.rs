//! The page shell every dashboard page shares: head, navigation, styles, and the small script
//! that keeps a page live while a person waits on it.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::auth::Caller;

/// Inline, so a page is one request and works on a machine without internet access.
const STYLE: &str = r#"
:root { --fg:#1d2330; --muted:#5b6475; --line:#dde1e8; --bg:#f7f8fa; --ok:#1f7a3d; --bad:#b3261e; --warn:#9a6400; --run:#1a5fb4; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; gap:1.5em; align-items:center; padding:.6em 1.2em; background:#1d2330; color:#fff; }
header a { color:#dfe6f3; text-decoration:none; } header a:hover { color:#fff; text-decoration:underline; }
header .brand { font-weight:700; color:#fff; } header .who { margin-left:auto; color:#aab3c5; }
header form { display:inline; } header button { background:none; border:0; color:#dfe6f3; cursor:pointer; font:inherit; padding:0; }
main { padding:1em 1.4em; max-width:1400px; }
h1 { font-size:1.4em; margin:.2em 0 .6em; } h2 { font-size:1.15em; margin:1.4em 0 .5em; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:.35em .6em; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef1f5; font-weight:600; } tr:hover td { background:#fafbfc; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
.status { display:inline-block; padding:0 .5em; border-radius:.8em; font-size:.9em; border:1px solid currentColor; }
.s-succeeded, .s-ok, .s-sent { color:var(--ok); } .s-failed, .s-uncertain { color:var(--bad); }
.s-partial, .s-interrupted, .s-skipped { color:var(--warn); } .s-running { color:var(--run); }
.muted { color:var(--muted); } .error { color:var(--bad); white-space:pre-wrap; }
pre { background:#fff; border:1px solid var(--line); padding:.6em; overflow:auto; white-space:pre-wrap; }
form.inline { display:inline; } input, select, button { font:inherit; padding:.2em .4em; }
button.primary { background:var(--run); color:#fff; border:1px solid var(--run); border-radius:3px; cursor:pointer; }
button.danger { background:#fff; color:var(--bad); border:1px solid var(--bad); border-radius:3px; cursor:pointer; }
.filters { display:flex; flex-wrap:wrap; gap:.6em; align-items:end; margin:.4em 0 .8em; }
.filters label { display:flex; flex-direction:column; font-size:.85em; color:var(--muted); }
.pager { margin:.8em 0; display:flex; gap:1em; }
.cards { display:flex; flex-wrap:wrap; gap:1em; } .card { background:#fff; border:1px solid var(--line); padding:.6em .9em; min-width:10em; }
.card .n { font-size:1.6em; font-weight:600; }
img.artifact { max-width:100%; border:1px solid var(--line); } iframe.artifact { width:100%; height:32em; border:1px solid var(--line); background:#fff; }
.flash { background:#eaf3ea; border:1px solid #b9d8bc; padding:.5em .8em; margin-bottom:1em; }
"#;

/// Elements with `data-live="MS"` are fetched again every MS milliseconds (the same URL) and
/// replaced by their new version, until the page says it is done (`data-live` gone).
const LIVE: &str = r#"
(function () {
  function tick(el) {
    var ms = parseInt(el.getAttribute('data-live'), 10);
    if (!ms) return;
    setTimeout(function () {
      fetch(location.href, { headers: { 'X-Requested-With': 'cxflow-live' }, credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (t) {
          var doc = new DOMParser().parseFromString(t, 'text/html');
          var fresh = el.id && doc.getElementById(el.id);
          if (fresh) { el.replaceWith(fresh); tick(fresh); } else { tick(el); }
        })
        .catch(function () { tick(el); });
    }, ms);
  }
  document.querySelectorAll('[data-live]').forEach(tick);
})();
"#;

/// A full page for a logged-in caller, with the navigation.
pub(crate) fn page(title: &str, caller: &Caller, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header {
                    a.brand href="/" { "cxflow" }
                    a href="/" { "Overview" }
                    a href="/runs" { "Runs" }
                    a href="/digests" { "Digests" }
                    a href="/actions" { "Actions" }
                    span.who {
                        (caller.name) " · " (caller.role.as_str())
                        @if caller.can_log_out() {
                            " · "
                            form method="post" action="/logout" { (csrf_field(caller)) button type="submit" { "Log out" } }
                        }
                    }
                }
                main { (body) }
                script { (PreEscaped(LIVE)) }
            }
        }
    }
}

/// A page without navigation (login, errors).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { header { a.brand href="/" { "cxflow" } } main { (body) } }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · cxflow" }
        style { (PreEscaped(STYLE)) }
    }
}

/// The hidden CSRF field every state-changing form carries (empty when the caller needs none).
pub(crate) fn csrf_field(caller: &Caller) -> Markup {
    html! { input type="hidden" name="csrf" value=(caller.csrf_token().unwrap_or_default()); }
}

/// A status word as a coloured badge.
pub(crate) fn status(word: &str) -> Markup {
    html! { span class={ "status s-" (word) } { (word) } }
}
