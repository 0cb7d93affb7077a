//! The digests pages, for product teams: `/digests` lists every team a `route` step wrote
//! digests for, and `/digests/{scope}/{team}` shows one team's history (a trend chart and the
//! table, each digest's files one click away). A scope is `<workflow>/<step id>` and holds a
//! `/`: in the URL it is one percent-encoded path segment.

mod chart;
mod team;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::fmt;
use crate::store::DigestTeam;
use crate::web::auth::{Caller, Role};
use crate::web::{layout, App, WebError};

pub(super) fn routes() -> Router<App> {
    Router::new().route("/digests", get(list)).route("/digests/{scope}/{team}", get(team::page))
}

/// `/digests/SCOPE/TEAM`, each percent-encoded as one path segment (a scope's `/` too).
pub(crate) fn team_url(scope: &str, team: &str) -> String {
    let mut u = url::Url::parse("http://x/").expect("a constant base URL");
    u.path_segments_mut().expect("an http URL has path segments").push("digests").push(scope).push(team);
    u.path().to_string()
}

async fn list(State(app): State<App>, caller: Caller) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let teams = app.store.digest_teams().await?;
    Ok(layout::page("Digests", &caller, render_list(&teams)))
}

fn render_list(teams: &[DigestTeam]) -> Markup {
    html! {
        h1 { "Digests" }
        @if teams.is_empty() {
            p.muted { "No digests yet. A " code { "route" } " step writes one per team each run it routes feedback to that team." }
        } @else {
            table #digest-teams {
                thead { tr {
                    th { "Scope (workflow/step)" } th { "Team" } th { "Last digest" } th.num { "Last run" } th.num { "Digests" }
                } }
                tbody {
                    @for t in teams {
                        tr {
                            td { code { (t.scope) } }
                            td { a href=(team_url(&t.scope, &t.team)) { (t.team) } }
                            td { (fmt::time(&t.last_created_at)) }
                            td.num { a href={ "/runs/" (t.last_run_id) } { (t.last_run_id) } }
                            td.num { (t.digests) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::team_url;

    #[test]
    fn a_scope_and_a_team_are_one_path_segment_each() {
        assert_eq!(team_url("fb/routed", "Billing"), "/digests/fb%2Frouted/Billing");
        assert_eq!(team_url("a b/r", "R&D <x>?#"), "/digests/a%20b%2Fr/R&D%20%3Cx%3E%3F%23");
        assert_eq!(team_url("w/s", "100%"), "/digests/w%2Fs/100%25");
    }
}
