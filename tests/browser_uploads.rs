//! The browser `upload` action end to end (real binary, chromedriver + Chromium, the demo portal):
//! a relative path reaches WebDriver as an absolute canonical one, and a path rendered from a
//! record may not leave the project folder.

mod browser_common;
mod support;

use browser_common::*;
use cxflow::demo_portal::PortalOptions;
use support::TestProject;

/// A project whose workflow uploads `{{item.file}}` (or `upload`, when given) for each row of
/// `rows` (`order_id,file`).
fn upload_project(portal: &BgPortal, rows: &[(&str, &str)], upload: &str) -> TestProject {
    let p = TestProject::new();
    let mut csv = String::from("order_id,file\n");
    for (order, file) in rows {
        csv.push_str(&format!("{order},{file}\n"));
    }
    p.write("data/returns.csv", &csv);
    p.write(
        "workflows/returns.yaml",
        &format!(
            r##"name: returns
params:
  portal: {url}
secrets: [PORTAL_USER, PORTAL_PASSWORD]
steps:
  - id: returns
    read_csv: data/returns.csv
  - id: register
    for_each: returns
    item_key: "{{{{item.order_id}}}}"
    browser:
      sessions: 1
{login}      actions:
        - goto: "{{{{params.portal}}}}/returns/new"
        - fill: {{ "#order": "{{{{item.order_id}}}}", "#email": "a@example.com" }}
        - select: {{ "#reason": "damaged" }}
        - upload: {{ "#attachment": "{upload}" }}
        - check: "#consent"
        - submit: "#submit"
        - wait_for: {{ selector: "#confirmation", timeout: 10s }}
"##,
            login = browser_common::LOGIN,
            url = portal.url
        ),
    );
    p
}

#[test]
fn a_relative_upload_path_reaches_the_portal_from_a_project_named_through_a_symlink() {
    let portal = BgPortal::start(PortalOptions::default());
    let p = upload_project(&portal, &[("SO-1", "")], "receipts/SO-1.txt");
    p.write("receipts/SO-1.txt", "receipt one");
    // `-C` names the project through a symlink and a `..`: chromedriver would refuse that path
    // as "not canonical" if it were passed on as written.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(p.path(), outside.path().join("proj")).unwrap();
    std::fs::create_dir(outside.path().join("sub")).unwrap();
    let via = outside.path().join("sub/../proj");
    let run = support::Run::from(cxflow(&p).arg("-C").arg(&via).args(["run", "returns"]).output().unwrap());
    run.expect_code(0);
    let recs = portal.records();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!((recs[0].attachment_name.as_deref(), recs[0].attachment_size), (Some("SO-1.txt"), 11));
}

#[test]
fn an_upload_path_from_a_record_that_leaves_the_project_fails_only_that_item() {
    let portal = BgPortal::start(PortalOptions::default());
    let p = upload_project(&portal, &[("SO-1", "receipts/SO-1.txt"), ("SO-2", "../../../../../../etc/passwd")], "{{item.file}}");
    p.write("receipts/SO-1.txt", "receipt one");
    let run = support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap());
    run.expect_code(1);
    let recs = portal.records();
    assert_eq!(recs.len(), 1, "only the record inside the project is submitted: {recs:#?}");
    assert_eq!((recs[0].order.as_str(), recs[0].attachment_name.as_deref()), ("SO-1", Some("SO-1.txt")));
    let err = &p.query("SELECT error FROM items WHERE item_key = 'SO-2'")[0];
    assert!(err.starts_with("cannot render the actions for item `SO-2`: refusing the upload: path `../../../../../../etc/passwd` resolves to `/etc/passwd`, outside the project folder"), "{err}");
}
