use super::*;
use chrono::{Datelike, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Europe::London;
use chrono_tz::UTC;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn fires(expr: &str, from: &str, to: &str, tz: Tz) -> Vec<DateTime<Utc>> {
    let s = CronSchedule::parse(expr).unwrap();
    let end = utc(to);
    s.iter_after(utc(from), tz).take_while(|t| *t < end).collect()
}

#[test]
fn weekday_numbers_mean_what_crontab_means() {
    // 2025-06-01 is a Sunday. `1-5` is Monday to Friday in crontab.
    let got = fires("0 9 * * 1-5", "2025-06-01T00:00:00Z", "2025-06-08T00:00:00Z", UTC);
    let days: Vec<Weekday> = got.iter().map(|t| t.weekday()).collect();
    assert_eq!(days, vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]);
    assert!(got.iter().all(|t| t.format("%H:%M:%S").to_string() == "09:00:00"));
}

#[test]
fn sunday_is_zero_and_seven() {
    for expr in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN", "0 9 * * sunday"] {
        let got = fires(expr, "2025-06-01T10:00:00Z", "2025-06-16T00:00:00Z", UTC);
        assert_eq!(got.len(), 2, "{expr}");
        assert!(got.iter().all(|t| t.weekday() == Weekday::Sun), "{expr}");
    }
}

#[test]
fn weekday_ranges_steps_and_lists() {
    assert_eq!(translate_weekdays("5-7").unwrap(), "SUN,FRI,SAT");
    assert_eq!(translate_weekdays("*/2").unwrap(), "SUN,TUE,THU,SAT");
    assert_eq!(translate_weekdays("1-5/2").unwrap(), "MON,WED,FRI");
    assert_eq!(translate_weekdays("MON-FRI").unwrap(), "MON,TUE,WED,THU,FRI");
    assert_eq!(translate_weekdays("0,6").unwrap(), "SUN,SAT");
    assert!(translate_weekdays("8").is_err());
    assert!(translate_weekdays("5-1").is_err());
    assert!(translate_weekdays("FUNDAY").is_err());
}

#[test]
fn day_of_month_or_day_of_week_when_both_restricted() {
    // crontab: the 13th of each month OR any Friday.
    let got = fires("0 0 13 * 5", "2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z", UTC);
    let days: Vec<u32> = got.iter().map(|t| t.day()).collect();
    // Fridays in June 2025: 6, 13, 20, 27; the 13th is itself a Friday (fires once).
    assert_eq!(days, vec![6, 13, 20, 27]);
    let got = fires("0 0 1 * 1", "2025-09-01T00:00:01Z", "2025-10-02T00:00:00Z", UTC);
    let days: Vec<u32> = got.iter().map(|t| t.day()).collect();
    // Mondays in Sept 2025 after the 1st: 8, 15, 22, 29; then Oct 1 (day of month).
    assert_eq!(days, vec![8, 15, 22, 29, 1]);
}

#[test]
fn star_step_weekday_keeps_and_semantics_like_crontab() {
    // Vixie cron treats a field starting with `*` as unrestricted for the OR rule.
    let got = fires("0 0 1 * */2", "2025-01-01T00:00:01Z", "2026-01-01T00:00:00Z", UTC);
    assert!(got.iter().all(|t| t.day() == 1));
    assert!(got.iter().all(|t| matches!(t.weekday(), Weekday::Sun | Weekday::Tue | Weekday::Thu | Weekday::Sat)));
}

#[test]
fn six_and_seven_fields() {
    let got = fires("*/10 * * * * *", "2025-06-01T00:00:00Z", "2025-06-01T00:01:00Z", UTC);
    assert_eq!(got.len(), 5);
    let got = fires("0 0 12 1 1 * 2030", "2025-01-01T00:00:00Z", "2040-01-01T00:00:00Z", UTC);
    assert_eq!(got, vec![utc("2030-01-01T12:00:00Z")]);
    // 6 fields with crontab weekday numbers.
    let got = fires("0 0 9 * * 1", "2025-06-01T00:00:00Z", "2025-06-08T00:00:00Z", UTC);
    assert_eq!(got, vec![utc("2025-06-02T09:00:00Z")]);
}

#[test]
fn shortcuts() {
    let s = |e| fires(e, "2025-06-01T00:00:00Z", "2025-07-01T00:00:01Z", UTC).len();
    // Strictly after 2025-06-01T00:00 up to 2025-07-01T00:00 included.
    assert_eq!(s("@hourly"), 30 * 24);
    assert_eq!(s("@daily"), 30);
    assert_eq!(s("@weekly"), 4); // Sundays 8, 15, 22, 29
    assert_eq!(s("@monthly"), 1);
    let weekly = fires("@weekly", "2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z", UTC);
    assert!(weekly.iter().all(|t| t.weekday() == Weekday::Sun));
}

#[test]
fn errors_say_what_and_how() {
    let e = CronSchedule::parse("0 9 * *").unwrap_err();
    assert!(e.message.contains("has 4 fields"), "{e:?}");
    assert!(e.help.unwrap().contains("5 fields"));
    let e = CronSchedule::parse("61 * * * *").unwrap_err();
    assert!(e.message.contains("minute field `61`"), "{e:?}");
    assert!(e.message.contains("minutes are 0-59"), "{e:?}");
    let e = CronSchedule::parse("0 25 * * *").unwrap_err();
    assert!(e.message.contains("hour field `25`"), "{e:?}");
    let e = CronSchedule::parse("0 9 * * 8").unwrap_err();
    assert!(e.message.contains("day-of-week `8`"), "{e:?}");
    let e = CronSchedule::parse("@fortnightly").unwrap_err();
    assert!(e.message.contains("unknown cron shortcut"), "{e:?}");
    let e = CronSchedule::parse("").unwrap_err();
    assert!(e.message.contains("empty"));
    let e = CronSchedule::parse("0 0 * 13 *").unwrap_err();
    assert!(e.message.contains("month field `13`"), "{e:?}");
}

#[test]
fn london_spring_forward_runs_once_after_the_gap() {
    // 2025-03-30: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist.
    let got = fires("30 1 * * *", "2025-03-28T12:00:00Z", "2025-04-01T12:00:00Z", London);
    assert_eq!(
        got,
        vec![
            utc("2025-03-29T01:30:00Z"),
            utc("2025-03-30T01:00:00Z"), // first instant after the gap (02:00 BST)
            utc("2025-03-31T00:30:00Z"), // 01:30 BST
            utc("2025-04-01T00:30:00Z"),
        ]
    );
}

#[test]
fn london_fall_back_runs_once_at_first_occurrence() {
    // 2025-10-26: 02:00 BST falls back to 01:00 GMT; 01:30 happens twice.
    let got = fires("30 1 * * *", "2025-10-24T12:00:00Z", "2025-10-28T12:00:00Z", London);
    assert_eq!(
        got,
        vec![
            utc("2025-10-25T00:30:00Z"),
            utc("2025-10-26T00:30:00Z"), // 01:30 BST, first pass only
            utc("2025-10-27T01:30:00Z"),
            utc("2025-10-28T01:30:00Z"),
        ]
    );
    // Asking from inside the second pass does not fire the repeated time again.
    let s = CronSchedule::parse("30 1 * * *").unwrap();
    assert_eq!(s.next_after(utc("2025-10-26T01:10:00Z"), London), Some(utc("2025-10-27T01:30:00Z")));
}

#[test]
fn new_york_0230_on_both_dst_nights() {
    // 2025-03-09 02:00 EST → 03:00 EDT; 2025-11-02 02:00 EDT → 01:00 EST.
    let got = fires("30 2 * * *", "2025-03-08T12:00:00Z", "2025-03-10T12:00:00Z", New_York);
    assert_eq!(got, vec![utc("2025-03-09T07:00:00Z"), utc("2025-03-10T06:30:00Z")]);
    let got = fires("30 1 * * *", "2025-11-01T12:00:00Z", "2025-11-03T12:00:00Z", New_York);
    assert_eq!(got, vec![utc("2025-11-02T05:30:00Z"), utc("2025-11-03T06:30:00Z")]);
}

#[test]
fn hourly_jobs_follow_elapsed_time() {
    // London day of 2025-10-26 has 25 hours, 2025-03-30 has 23.
    let n = fires("0 * * * *", "2025-10-25T22:59:59Z", "2025-10-26T23:59:59Z", London).len();
    assert_eq!(n, 25);
    let n = fires("0 * * * *", "2025-03-29T23:59:59Z", "2025-03-30T22:59:59Z", London).len();
    assert_eq!(n, 23);
    // Every 15 minutes keeps a steady 15-minute rhythm through both changes.
    for (from, to) in [("2025-10-25T22:00:00Z", "2025-10-26T04:00:00Z"), ("2025-03-29T22:00:00Z", "2025-03-30T04:00:00Z")] {
        let got = fires("*/15 * * * *", from, to, London);
        for w in got.windows(2) {
            assert_eq!(w[1] - w[0], chrono::Duration::minutes(15), "{w:?}");
        }
    }
}

#[test]
fn new_york_every_minute_across_fall_back_is_steady() {
    let got = fires("* * * * *", "2025-11-02T04:30:00Z", "2025-11-02T07:30:00Z", New_York);
    assert_eq!(got.len(), 179);
    for w in got.windows(2) {
        assert_eq!(w[1] - w[0], chrono::Duration::minutes(1), "{w:?}");
    }
    // Every second across spring-forward: no gap, no repeat.
    let got = fires("* * * * * *", "2025-03-09T06:59:00Z", "2025-03-09T07:01:00Z", New_York);
    assert_eq!(got.len(), 119);
}
