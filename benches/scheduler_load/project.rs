//! The benchmark's project: `n` workflow files in 5 time zones, a third with a holiday calendar.

use std::path::Path;

/// A cron that does not fire while the benchmark runs (unless run at 03:00 on New Year's Day).
pub(crate) const FAR: &str = "'0 3 1 1 *'";

/// Writes (or rewrites) the project under `root`; `cron(i)` is workflow i's cron, quoted.
pub(crate) fn write(root: &Path, n: usize, cron: impl Fn(usize) -> String) {
    std::fs::create_dir_all(root.join("workflows")).unwrap();
    std::fs::create_dir_all(root.join("calendars")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/calendars/uk-bank-holidays.yaml"), root.join("calendars/uk-bank-holidays.yaml"))
        .unwrap();
    std::fs::write(root.join("data/tickets.csv"), "id\n1\n").unwrap();
    for i in 0..n {
        std::fs::write(root.join(format!("workflows/wf-{i}.yaml")), workflow(i, &cron(i))).unwrap();
    }
}

pub(crate) fn workflow(i: usize, cron: &str) -> String {
    let zones = ["Europe/London", "America/New_York", "UTC", "Asia/Tokyo", "Australia/Sydney"];
    format!(
        "name: wf-{i}\nschedule:\n  cron: {cron}\n  timezone: {}\n  overlap: skip\n  max_runtime: 1h\n{}steps:\n  - id: tickets\n    read_csv: data/tickets.csv\n",
        zones[i % zones.len()],
        if i.is_multiple_of(3) { "  calendar: calendars/uk-bank-holidays.yaml\n" } else { "" },
    )
}
