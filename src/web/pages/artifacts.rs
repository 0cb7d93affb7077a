//! A run's artifacts: shown inline on its page, and served one file at a time. A file is served
//! only if its row belongs to the run in the URL and its real path (symlinks followed) lies
//! inside the project's real artifacts folder; HTML goes out sandboxed (`Content-Security-Policy:
//! sandbox`: no script, an opaque origin), so a captured page cannot act as the dashboard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::fmt;
use crate::store::{ArtifactWithId, Page};
use crate::web::auth::{Caller, Role};
use crate::web::{App, WebError};

/// Text artifacts (emails, markdown digests) are shown inline up to this size.
const PREVIEW_BYTES: usize = 64 * 1024;

/// For every artifact response: sandboxed (no script, opaque origin, no forms), and nothing
/// loaded from anywhere else (a captured page's trackers stay silent); inline styles and
/// embedded images still show.
const CSP: &str = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    Image,
    /// HTML, in a sandboxed frame.
    Frame,
    /// Escaped text.
    Text,
    Link,
}

fn extension(path: &str) -> String {
    Path::new(path).extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

fn show(a: &ArtifactWithId) -> Show {
    match (a.kind.as_str(), extension(&a.path).as_str()) {
        (_, "png" | "jpg" | "jpeg" | "gif" | "webp") => Show::Image,
        (_, "html" | "htm") => Show::Frame,
        ("eml", _) | (_, "eml" | "md" | "markdown" | "txt") => Show::Text,
        _ => Show::Link,
    }
}

/// What the browser is told a file is. Never a type it would run as script in our origin: HTML
/// and SVG are only ever served under the sandbox CSP.
fn content_type(path: &str) -> &'static str {
    match extension(path).as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "eml" | "md" | "markdown" | "txt" | "csv" | "log" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The real path of an artifact file if it lies inside the project's real artifacts folder.
pub(super) fn confined(app: &App, stored: &str) -> Option<PathBuf> {
    let cfg = &app.project.config;
    let root = std::fs::canonicalize(cfg.path(&app.project.dir, &cfg.artifacts_dir)).ok()?;
    let real = std::fs::canonicalize(cfg.path(&app.project.dir, Path::new(stored))).ok()?;
    (real.starts_with(&root) && real.is_file()).then_some(real)
}

fn not_found() -> WebError {
    WebError::NotFound("no such artifact in this run (or its file is gone, or lies outside the artifacts folder)".into())
}

/// `/runs/{id}/artifacts/{artifact_id}`: the file, inline.
pub(super) async fn file(
    State(app): State<App>,
    caller: Caller,
    UrlPath((run_id, artifact_id)): UrlPath<(i64, i64)>,
) -> Result<Response, WebError> {
    caller.require(Role::Viewer)?;
    let a = app.store.artifact(run_id, artifact_id).await?.ok_or_else(not_found)?;
    let path = confined(&app, &a.path).ok_or_else(not_found)?;
    let body = tokio::fs::read(&path).await.map_err(|_| not_found())?;
    // The run page shows HTML artifacts in an `<iframe sandbox>`: framing by this server's own
    // pages is allowed, by any other site not (the guard adds `frame-ancestors 'self'`).
    let mut r = (crate::web::auth::SameOriginFraming, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&a.path)));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(r)
}

/// What the page can show of an artifact's file.
pub(super) enum Preview {
    /// Gone, or outside the artifacts folder: `file` refuses it too.
    Unreadable,
    Served,
    /// The start of a text artifact; `cut` when the file is longer.
    Text {
        text: String,
        cut: bool,
    },
}

/// For each artifact of `rows`, whether `file` serves it (confined the same way), and the
/// start of the text ones.
pub(super) async fn previews(app: &App, rows: &[ArtifactWithId]) -> HashMap<i64, Preview> {
    let mut out = HashMap::new();
    for a in rows {
        let Some(path) = confined(app, &a.path) else {
            out.insert(a.id, Preview::Unreadable);
            continue;
        };
        let p = match show(a) {
            Show::Text => match tokio::fs::read(&path).await {
                Ok(bytes) => Preview::Text {
                    text: String::from_utf8_lossy(&bytes[..bytes.len().min(PREVIEW_BYTES)]).into_owned(),
                    cut: bytes.len() > PREVIEW_BYTES,
                },
                Err(_) => Preview::Unreadable,
            },
            _ => Preview::Served,
        };
        out.insert(a.id, p);
    }
    out
}

pub(super) fn section(run_id: i64, page: &Page<ArtifactWithId>, previews: &HashMap<i64, Preview>) -> Markup {
    html! {
        @if !page.rows.is_empty() {
            h2 #artifacts { "Artifacts" }
            @for a in &page.rows {
                @let href = format!("/runs/{run_id}/artifacts/{}", a.id);
                @let name = Path::new(&a.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                figure.artifact data-kind=(a.kind) {
                    figcaption {
                        a href=(href) { (name) } " "
                        span.muted { (a.kind) " · step " (a.step_id) @if let Some(k) = &a.item_key { " · item " code { (k) } } }
                    }
                    @match (show(a), previews.get(&a.id)) {
                        (_, Some(Preview::Unreadable) | None) => p.muted { "The file cannot be shown (gone, or outside the artifacts folder)." },
                        (_, Some(Preview::Text { text, cut })) => { pre.artifact { (text) } @if *cut { p.muted { "Cut; the link has the whole file." } } },
                        (Show::Image, _) => img.artifact src=(href) alt=(name) loading="lazy";,
                        // An empty `sandbox`: no script, no same-origin, no forms, no top navigation.
                        (Show::Frame, _) => iframe.artifact sandbox="" src=(href) title=(name) loading="lazy" {},
                        (Show::Text | Show::Link, _) => {},
                    }
                }
            }
            @if let Some(next) = page.next {
                nav.pager { a rel="next" href={ "/runs/" (run_id) "?art_after=" (next) "#artifacts" } { "more artifacts »" } }
            }
        }
    }
}
