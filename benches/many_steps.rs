//! How a workflow's cost grows with its number of steps: `cxflow validate` and `cxflow run` of a
//! generated workflow of N steps, each through the real binary (spec, plan, engine, run log).
//!
//! `cargo bench --bench many_steps` prints 1,000 / 5,000 / 10,000 / 20,000 steps;
//! `-- --steps N` (repeatable) picks the sizes, `-- --cxflow PATH` runs another build of the
//! binary (the "before" one), `-- --timeout SECS` (default 120) gives up on a size that takes longer,
//! `-- --write-to DIR` only writes the projects (to profile `cxflow` on one by hand).
//! Prints wall time, CPU, peak RSS and time per step, so linearity shows; asserts nothing about time.
//!
//! The workflow is a mix of small batch steps: JSON sources, JSON/CSV sinks of them, a source
//! whose path is `steps.<earlier>.output.path`, `when:` conditions on early, recent and skipped
//! steps (`steps.<id>.skipped`), and one `command` in 50 whose argument is an earlier output.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Measured {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
}

/// The workflow: blocks of ten steps, `b` the block.
fn workflow(n: usize) -> String {
    let mut y = String::from("name: many\nsteps:\n");
    for i in 0..n {
        let (b, k) = (i / 10, i % 10);
        let step = match k {
            0 => format!("  - id: r{b}\n    read_json: data/small.json\n"),
            1 => format!("  - id: j{b}\n    write_json: {{from: r{b}, path: out/j{b}.json}}\n"),
            2 => format!("  - id: c{b}\n    write_csv: {{from: r{b}, path: out/c{b}.csv}}\n"),
            3 => format!("  - id: t{b}\n    read_json: \"{{{{steps.r{b}.output.path}}}}\"\n"),
            // A late step reads the very first steps' outputs.
            4 => format!(
                "  - id: e{b}\n    when: \"{{{{gt steps.j0.output.count 0}}}}\"\n    write_json: {{from: t{b}, path: out/e{b}.json}}\n"
            ),
            // Never runs: `{"skipped": true}` is what the next step sees.
            5 => format!(
                "  - id: s{b}\n    when: \"{{{{eq steps.c{b}.output.count 0}}}}\"\n    write_json: {{from: r{b}, path: out/s{b}.json}}\n"
            ),
            6 => format!("  - id: k{b}\n    when: \"{{{{steps.s{b}.skipped}}}}\"\n    write_csv: {{from: t{b}, path: out/k{b}.csv}}\n"),
            7 => format!("  - id: u{b}\n    read_json: data/small.json\n"),
            8 => format!("  - id: w{b}\n    write_csv: {{from: u{b}, path: \"out/w{b}-{{{{steps.j{b}.output.count}}}}.csv\"}}\n"),
            _ if b % 5 == 0 => format!("  - id: x{b}\n    command: [\"true\", \"{{{{steps.w{b}.output.path}}}}\", \"{{{{run.id}}}}\"]\n"),
            _ => format!("  - id: x{b}\n    read_json: data/small.json\n"),
        };
        y.push_str(&step);
    }
    y
}

fn project(root: &Path, n: usize) -> PathBuf {
    let p = root.join(format!("p{n}"));
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::create_dir_all(p.join("workflows")).unwrap();
    std::fs::write(p.join("data/small.json"), r#"[{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bo"}, {"id": 3, "name": "Zoë"}]"#).unwrap();
    std::fs::write(p.join("workflows/many.yaml"), workflow(n)).unwrap();
    p
}

/// Runs `cxflow <args>` in `dir`; `None` when it did not finish within `timeout` (it is killed).
fn measure(bin: &Path, dir: &Path, args: &[&str], timeout: Duration) -> Option<Measured> {
    let t = Instant::now();
    // Waited for below with `wait4`, which gives this child's own CPU time and peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    loop {
        let mut status = 0;
        #[allow(unsafe_code)]
        let (r, ru) = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            (libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru), ru)
        };
        if r == pid {
            let wall = t.elapsed().as_secs_f64();
            let err = reader.join().unwrap();
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "cxflow {args:?} failed: {err}");
            let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
            return Some(Measured { wall, cpu: secs(ru.ru_utime) + secs(ru.ru_stime), rss_mb: ru.ru_maxrss as f64 / 1024.0 });
        }
        if t.elapsed() > timeout {
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let mut sizes = Vec::new();
    let mut bin = PathBuf::from(env!("CARGO_BIN_EXE_cxflow"));
    let mut timeout = Duration::from_secs(120);
    let mut write_to = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--steps" => sizes.push(args.next().and_then(|s| s.parse().ok()).expect("--steps N")),
            "--cxflow" => bin = PathBuf::from(args.next().expect("--cxflow PATH")),
            // Only write the projects there (to profile `cxflow` on them by hand).
            "--write-to" => write_to = Some(PathBuf::from(args.next().expect("--write-to DIR"))),
            "--timeout" => timeout = Duration::from_secs_f64(args.next().and_then(|s| s.parse().ok()).expect("--timeout SECS")),
            _ => {} // `--bench`, from cargo
        }
    }
    if sizes.is_empty() {
        sizes = vec![1_000, 5_000, 10_000, 20_000];
    }
    if let Some(dir) = write_to {
        for n in sizes {
            println!("{}", project(&dir, n).display());
        }
        return;
    }
    let root = tempfile::tempdir().unwrap();
    println!("many_steps: {}", bin.display());
    for n in sizes {
        let dir = project(root.path(), n);
        let mut line = format!("{n:>6} steps:");
        for (what, args) in [("validate", &["validate", "workflows/many.yaml"][..]), ("run", &["run", "many"][..])] {
            match measure(&bin, &dir, args, timeout) {
                Some(m) => {
                    let _ = write!(
                        line,
                        "  {what} {:.3} s wall, {:.3} s CPU, {:.0} MB, {:.1} µs/step;",
                        m.wall,
                        m.cpu,
                        m.rss_mb,
                        m.wall * 1e6 / n as f64
                    );
                }
                None => {
                    let _ = write!(line, "  {what} did not finish in {} s;", timeout.as_secs_f64());
                    break;
                }
            }
        }
        println!("{}", line.trim_end_matches(';'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
