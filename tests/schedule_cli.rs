//! `cxflow next`, `cxflow prune` and schedule validation through the real binary.

mod support;

use support::TestProject;

fn project() -> TestProject {
    let p = TestProject::new();
    p.write("data/tickets.csv", "id\n1\n");
    p.write("calendars/us.yaml", "- {date: 2025-03-10, name: Test Holiday}\n");
    p.write(
        "workflows/ny.yaml",
        "name: ny\nschedule:\n  cron: \"30 2 * * *\"\n  timezone: America/New_York\n  calendar: calendars/us.yaml\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n",
    );
    p.write(
        "workflows/weekdays.yaml",
        "name: weekdays\nschedule:\n  cron: \"0 9 * * 1-5\"\n  timezone: Europe/London\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n",
    );
    p
}

#[test]
fn next_lists_fire_times_in_zone_and_local_time_across_dst() {
    let p = project();
    let r =
        support::Run::from(p.cxflow().env("TZ", "UTC").args(["next", "--count", "3", "--after", "2025-03-07T12:00:00Z"]).output().unwrap());
    r.expect_code(0);
    let out = &r.stdout;
    // 02:30 does not exist on 2025-03-09 in New York: it fires at 03:00 EDT (07:00 UTC).
    assert!(out.contains("Sat 2025-03-08 02:30:00 EST (America/New_York)  Sat 2025-03-08 07:30:00 +00:00"), "{out}");
    assert!(out.contains("Sun 2025-03-09 03:00:00 EDT (America/New_York)  Sun 2025-03-09 07:00:00 +00:00"), "{out}");
    assert!(out.contains("skipped: 2025-03-10 is Test Holiday in calendar calendars/us.yaml"), "{out}");
    // `1-5` is Monday to Friday, as in crontab: after Friday 12:00 comes Monday.
    assert!(out.contains("weekdays  Mon 2025-03-10 09:00:00 GMT (Europe/London)"), "{out}");
    assert!(!out.contains("Sun 2025-03-09 09:00:00 GMT"), "{out}");
}

#[test]
fn validate_reports_schedule_errors_at_their_position() {
    let p = project();
    p.write(
        "workflows/bad.yaml",
        "name: bad\nschedule:\n  cron: \"0 9 * * 1-8\"\n  timezone: Europe/Londn\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n",
    );
    let r = p.run(&["validate", "workflows/bad.yaml"]);
    r.expect_code(2);
    assert!(r.stderr.contains("error: invalid day-of-week `1-8`: `8` is out of range\n  --> workflows/bad.yaml:3:9"), "{}", r.stderr);
    assert!(r.stderr.contains("error: unknown time zone `Europe/Londn`\n  --> workflows/bad.yaml:4:13"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `Europe/London`?"), "{}", r.stderr);
}

#[test]
fn prune_keeps_the_newest_runs() {
    let p = project();
    p.write("cxflow.yaml", "retention_runs: 1\n");
    for _ in 0..3 {
        p.run(&["run", "weekdays"]).expect_code(0);
    }
    let r = p.run(&["prune"]);
    r.expect_code(0);
    assert!(r.stdout.contains("pruned 2 run(s)"), "{}", r.stdout);
    assert_eq!(p.query("SELECT count(*) FROM runs"), vec!["1"]);
    assert_eq!(p.query("PRAGMA auto_vacuum"), vec!["2"]);
}
