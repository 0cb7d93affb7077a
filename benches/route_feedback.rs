//! Routing benchmark: 1,000,000 generated feedback rows (~150 MB CSV, fixed seed), 12 teams with
//! regex rules. Run: `cargo bench --bench route_feedback` (ROWS=n to change the size).
//!
//! The CSV is generated once under target/bench-data; routing then runs in a child process so
//! its peak memory (VmHWM) is not polluted by generation.

#[path = "support/feedback_gen.rs"]
mod feedback_gen;

use std::path::{Path, PathBuf};
use std::time::Instant;

use cxflow::steps::route::bucket::Limits;
use cxflow::steps::route::compile::{compile, CompileInput};
use cxflow::steps::route::parallel::{route_csv_parallel, Setup};
use cxflow::steps::route::rules::{FieldsSpec, Mode, RulesFile};
use cxflow::steps::route::seen::{IdBatch, IdSink};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` support
    }
    let rows: u64 = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join(format!("feedback-{rows}.csv"));
    if !csv.exists() {
        let t = Instant::now();
        let tmp = csv.with_extension("tmp");
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
        feedback_gen::write_feedback(&mut w, rows, 42).unwrap();
        drop(w);
        std::fs::rename(&tmp, &csv).unwrap();
        eprintln!("generated {} in {:.2?}", csv.display(), t.elapsed());
    }
    let size = std::fs::metadata(&csv).unwrap().len();
    println!("input: {rows} rows, {:.1} MB", size as f64 / 1e6);
    for _ in 0..3 {
        let st = std::process::Command::new(std::env::current_exe().unwrap()).arg("--child").arg(&csv).status().unwrap();
        assert!(st.success());
    }
}

fn child(csv: &Path) {
    let t = Instant::now();
    if std::env::var("PARSE_ONLY").is_ok() {
        let mut rdr = csv::ReaderBuilder::new().buffer_capacity(1 << 18).from_reader(std::fs::File::open(csv).unwrap());
        let mut rec = csv::ByteRecord::new();
        let mut n = 0u64;
        while rdr.read_byte_record(&mut rec).unwrap() {
            n += rec.len() as u64;
        }
        println!("parse only: {:.3} s ({n} fields)", t.elapsed().as_secs_f64());
        return;
    }
    let file: RulesFile = serde_yaml::from_str(feedback_gen::TEAMS_YAML).unwrap();
    let fields = FieldsSpec { channel: "channel".into(), ..FieldsSpec::default() };
    let rules = compile(&CompileInput {
        teams: &file.teams,
        teams_path: "teams",
        fields: &fields,
        unmatched: None,
        unmatched_path: "unmatched",
        as_of: 1_714_651_200,
    })
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    let sink = || -> Option<IdSink> { Some(Box::new(|_b: IdBatch| {})) };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let setup = Setup {
        rules: &rules,
        mode: Mode::FirstMatch,
        limits: Limits { urgent: 10, sample: 5, keywords: 10 },
        seen: None,
        sink: &sink,
        workers,
        delimiter: b',',
        cancelled: &|| false,
    };
    let f = std::fs::File::open(csv).unwrap();
    let (router, _) = route_csv_parallel(f, &setup).unwrap();
    let out: Vec<_> = router.buckets.iter().map(|b| b.stats_json(&Limits { urgent: 10, sample: 5, keywords: 10 })).collect();
    let wall = t.elapsed();
    println!(
        "route: {:.3} s wall, {:.3} s CPU, peak RSS {:.1} MB, {} records, {} routed, {} dropped, {} errors, {} teams",
        wall.as_secs_f64(),
        cpu_secs(),
        peak_rss_mb(),
        router.counts.records,
        router.counts.routed,
        router.counts.dropped,
        router.counts.errors,
        out.len()
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
