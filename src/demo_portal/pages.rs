//! HTML of the demo portal. Plain server-rendered pages with stable ids, like most back-office
//! portals; no JavaScript except the cookie banner.

pub(crate) const REASONS: &[(&str, &str)] = &[
    ("damaged", "Item arrived damaged"),
    ("wrong_item", "Wrong item sent"),
    ("too_late", "Arrived too late"),
    ("changed_mind", "Changed my mind"),
];

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Demo Returns Portal</title>\
         <style>body{{font-family:sans-serif;margin:2em}}label{{display:block;margin:.5em 0}}\
         #cookie-banner{{position:fixed;inset:0;background:rgba(0,0,0,.6);color:#fff;padding:30vh 2em}}</style>\
         </head><body>{body}</body></html>",
        t = esc(title)
    )
}

pub(crate) fn login(error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p id=\"login-error\">{}</p>", esc(e))).unwrap_or_default();
    layout(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{err}<form method=\"post\" action=\"/login\">\
             <label>User <input id=\"username\" name=\"username\" autocomplete=\"username\"></label>\
             <label>Password <input id=\"password\" name=\"password\" type=\"password\"></label>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

pub(crate) fn dashboard(user: &str) -> String {
    layout(
        "Dashboard",
        &format!(
            "<div id=\"dashboard\"><h1>Welcome, {}</h1>\
             <a id=\"new-return\" href=\"/returns/new\">Register a return</a> \
             <a href=\"/logout\">Sign out</a></div>",
            esc(user)
        ),
    )
}

/// The return form; `errors` re-renders it after a rejected submission. The email input is
/// `required`, so the browser itself blocks a submit without one (HTML5 validation) and the
/// portal never sees it; the server checks the rest (`routes::validate`).
pub(crate) fn return_form(cookie_banner: bool, errors: &[String]) -> String {
    let banner = if cookie_banner {
        "<div id=\"cookie-banner\">We use cookies. \
         <button id=\"accept-cookies\" type=\"button\" onclick=\"document.cookie='cookies_ok=1; path=/';\
         document.getElementById('cookie-banner').remove()\">Accept</button></div>"
    } else {
        ""
    };
    let errs = if errors.is_empty() {
        String::new()
    } else {
        let items: String = errors.iter().map(|e| format!("<li>{}</li>", esc(e))).collect();
        format!("<ul id=\"errors\">{items}</ul>")
    };
    let options: String = REASONS.iter().map(|(v, label)| format!("<option value=\"{v}\">{label}</option>")).collect();
    layout(
        "New return",
        &format!(
            "{banner}<h1>Register a return</h1>{errs}\
             <form id=\"return-form\" method=\"post\" action=\"/returns\" enctype=\"multipart/form-data\">\
             <label>Order number <input id=\"order\" name=\"order\"></label>\
             <label>Customer name <input id=\"name\" name=\"name\"></label>\
             <label>Customer email <input id=\"email\" name=\"email\" type=\"email\" required></label>\
             <label>Reason <select id=\"reason\" name=\"reason\"><option value=\"\">Choose…</option>{options}</select></label>\
             <label>Comment <textarea id=\"comment\" name=\"comment\"></textarea></label>\
             <label>Photo or receipt <input id=\"attachment\" name=\"attachment\" type=\"file\"></label>\
             <label><input id=\"consent\" name=\"consent\" type=\"checkbox\"> The customer agrees to the return terms</label>\
             <button id=\"submit\" type=\"submit\">Register return</button></form>"
        ),
    )
}

pub(crate) fn confirmation(id: &str, order: &str) -> String {
    layout(
        "Return registered",
        &format!(
            "<h1>Return registered</h1><p>Order <span id=\"order-number\">{}</span> \
             has confirmation number <strong id=\"confirmation\">{}</strong>.</p>\
             <a href=\"/returns/new\">Register another</a>",
            esc(order),
            esc(id)
        ),
    )
}
