//! Routing benchmark over 1,000,000 generated feedback rows (~150 MB CSV, fixed seed), two cases:
//! - `regex`: 12 teams with regex rules, first match;
//! - `ops`: 6 teams written the way ops people write them (product area, rating bounds and
//!   whole-word case-insensitive keyword lists as `(?i)\b(?:invoice|refund)\b`), all matches,
//!   the rest to a triage team, digests with the 50 most urgent items per team; about one text
//!   in six is German, French or Spanish.
//!
//! Run: `cargo bench --bench route_feedback` (both cases), `-- --case ops` for one; ROWS=n to
//! change the size, RUNS=n for the number of child runs per case.
//!
//! The CSV is generated once under target/bench-data; routing then runs in a child process so
//! its peak memory (VmHWM) is not polluted by generation.

#[path = "support/feedback_gen.rs"]
mod feedback_gen;

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::Arc;

use cxflow::config::Config;
use cxflow::secrets::Secrets;
use cxflow::steps::route::bucket::Limits;
use cxflow::steps::route::compile::{compile, CompileInput};
use cxflow::steps::route::parallel::{route_csv_parallel, Setup};
use cxflow::steps::route::rules::{FieldsSpec, Mode, RulesFile};
use cxflow::steps::route::seen::{IdBatch, IdSink};
use cxflow::store::Store;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Case::from_name(&args[i + 1]), Path::new(&args[i + 2]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` support
    }
    let rows: u64 = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let cases = match args.iter().position(|a| a == "--case") {
        Some(i) => vec![Case::from_name(&args[i + 1])],
        None => vec![Case::Regex, Case::Ops],
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    for case in cases {
        let csv = dir.join(match case {
            Case::Regex => format!("feedback-{rows}.csv"),
            Case::Ops => format!("feedback-ops-{rows}.csv"),
        });
        if !csv.exists() {
            let t = Instant::now();
            let tmp = csv.with_extension("tmp");
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
            match case {
                Case::Regex => feedback_gen::write_feedback(&mut w, rows, 42).unwrap(),
                Case::Ops => feedback_gen::write_feedback_ops(&mut w, rows, 42).unwrap(),
            }
            drop(w);
            std::fs::rename(&tmp, &csv).unwrap();
            eprintln!("generated {} in {:.2?}", csv.display(), t.elapsed());
        }
        let size = std::fs::metadata(&csv).unwrap().len();
        println!("case {}: {rows} rows, {:.1} MB", case.name(), size as f64 / 1e6);
        let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
        for _ in 0..runs {
            let st =
                std::process::Command::new(std::env::current_exe().unwrap()).args(["--child", case.name()]).arg(&csv).status().unwrap();
            assert!(st.success());
        }
    }
}

#[derive(Clone, Copy)]
enum Case {
    /// 12 regex teams, first match.
    Regex,
    /// 6 ops teams with whole-word keyword regexes, all matches, unmatched to Triage.
    Ops,
}

impl Case {
    fn from_name(s: &str) -> Case {
        match s {
            "regex" => Case::Regex,
            "ops" => Case::Ops,
            _ => panic!("unknown case `{s}`: regex or ops"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Case::Regex => "regex",
            Case::Ops => "ops",
        }
    }
    fn teams_yaml(self) -> &'static str {
        match self {
            Case::Regex => feedback_gen::TEAMS_YAML,
            Case::Ops => feedback_gen::OPS_TEAMS_YAML,
        }
    }
    /// The route step's options besides input and rules.
    fn route_options(self) -> &'static str {
        match self {
            Case::Regex => "      digest: { out_dir: out/digests }\n",
            Case::Ops => "      mode: all_matches\n      unmatched: Triage\n      digest: { out_dir: out/digests, urgent_limit: 50 }\n",
        }
    }
}

fn child(case: Case, csv: &Path) {
    if std::env::var("PARSE_ONLY").is_ok() {
        let t = Instant::now();
        let mut rdr = csv::ReaderBuilder::new().buffer_capacity(1 << 18).from_reader(std::fs::File::open(csv).unwrap());
        let mut rec = csv::ByteRecord::new();
        let mut n = 0u64;
        while rdr.read_byte_record(&mut rec).unwrap() {
            n += rec.len() as u64;
        }
        println!("parse only: {:.3} s ({n} fields)", t.elapsed().as_secs_f64());
        return;
    }
    if std::env::var("ROUTER_ONLY").is_ok() {
        return router_only(case, csv);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(whole_step(case, csv));
}

/// The real step: plan from YAML (rules file, templates), SQLite run log, digests written to
/// files; run twice, the second time with every id already routed.
async fn whole_step(case: Case, csv: &Path) {
    let csv = &csv.canonicalize().unwrap();
    let proj = csv.parent().unwrap().join("project");
    let _ = std::fs::remove_dir_all(&proj);
    std::fs::create_dir_all(proj.join("workflows")).unwrap();
    std::fs::create_dir_all(proj.join("routing")).unwrap();
    std::fs::write(proj.join("routing/teams.yaml"), case.teams_yaml()).unwrap();
    let wf = format!(
        "name: bench\nsteps:\n  - id: feedback\n    read_csv: {}\n  - id: routed\n    route:\n      input: feedback\n      rules: routing/teams.yaml\n      as_of: \"2024-05-02T12:00:00Z\"\n{}",
        csv.display(),
        case.route_options(),
    );
    std::fs::write(proj.join("workflows/bench.yaml"), &wf).unwrap();
    let file = Arc::new(cxflow::spec::load(&proj.join("workflows/bench.yaml")).map_err(|e| e.to_string()).unwrap());
    let config = Config::default();
    let plan = cxflow::plan::build(file, &config, &proj, &cxflow::steps::REGISTRY).map_err(|e| e.to_string()).unwrap();
    let store = Store::open(&format!("sqlite://{}", proj.join("bench.sqlite").display())).await.unwrap();
    // FIRST_ONLY=1 skips the rerun (for profiling the first run alone).
    let labels: &[&str] =
        if std::env::var("FIRST_ONLY").is_ok() { &["first run"] } else { &["first run", "rerun, all ids already routed"] };
    for &label in labels {
        let opts = cxflow::engine::RunOptions {
            trigger: cxflow::engine::Trigger::Manual,
            params: serde_json::Map::new(),
            dry_run: false,
            shutdown: tokio_util::sync::CancellationToken::new(),
            grace: std::time::Duration::from_secs(5),
            progress_bars: false,
            on_start: None,
        };
        let t = Instant::now();
        let cpu0 = cpu_secs();
        // The whole run through the engine: a `read_csv` step (lazy: it only checks the file)
        // and the route step, with the run log on.
        let summary =
            cxflow::engine::run(&plan, Arc::new(store.clone()), Arc::new(config.clone()), Secrets::default(), opts).await.unwrap();
        let row = store.steps(summary.run_id).await.unwrap().into_iter().find(|s| s.step_id == "routed").unwrap();
        let out: serde_json::Value = serde_json::from_str(row.output.as_deref().unwrap()).unwrap();
        println!(
            "{} route step ({label}): {:.3} s wall, {:.3} s CPU, peak RSS {:.1} MB; {} records, {} routed, {} already routed, {} dropped, {} errors, {} digests",
            case.name(),
            t.elapsed().as_secs_f64(),
            cpu_secs() - cpu0,
            peak_rss_mb(),
            out["records"],
            out["routed"],
            out["already_routed"],
            out["dropped"],
            out["errors"],
            out["teams"].as_array().map_or(0, Vec::len),
        );
    }
}

/// Routing alone (no run log, no digests): where the time goes.
fn router_only(case: Case, csv: &Path) {
    let t = Instant::now();
    let file: RulesFile = serde_saphyr::from_str(case.teams_yaml()).unwrap();
    let fields = FieldsSpec::default();
    let rules = compile(&CompileInput {
        teams: &file.teams,
        teams_path: "teams",
        fields: &fields,
        unmatched: matches!(case, Case::Ops).then_some("Triage"),
        unmatched_path: "unmatched",
        as_of: 1_714_651_200,
    })
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    let sink = || -> Option<IdSink> { Some(Box::new(|_b: IdBatch| {})) };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let setup = Setup {
        rules: &rules,
        mode: match case {
            Case::Regex => Mode::FirstMatch,
            Case::Ops => Mode::AllMatches,
        },
        limits: Limits { urgent: 10, sample: 5, keywords: 10, breakdown: 10 },
        seen: None,
        sink: &sink,
        workers,
        delimiter: b',',
        max_record: 1 << 20,
        source: "feedback.csv",
        cancelled: &|| false,
    };
    let (router, _) = route_csv_parallel(std::fs::File::open(csv).unwrap(), u64::MAX, &setup).unwrap();
    println!(
        "router only: {:.3} s wall, {:.3} s CPU, peak RSS {:.1} MB, {} records, {} routed",
        t.elapsed().as_secs_f64(),
        cpu_secs(),
        peak_rss_mb(),
        router.counts.records,
        router.counts.routed,
    );
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU time of this process: robust when other jobs share the cores.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
