//! Progress of one step's items: a bar on a terminal, a log line every few seconds otherwise.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::items::Counts;

pub(super) struct Progress {
    step: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Mutex<Instant>,
    total: Option<u64>,
}

const LINE_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub(super) fn new(step: &str, total: Option<u64>, bars: bool) -> Progress {
        let bar = bars.then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(step.to_string());
            bar
        });
        Progress { step: step.into(), bar, started: Instant::now(), last_line: Mutex::new(Instant::now()), total }
    }

    fn done(c: &Counts) -> u64 {
        c.ok + c.failed + c.skipped + c.earlier
    }

    pub(super) fn update(&self, c: &Counts) {
        if let Some(bar) = &self.bar {
            bar.set_position(Self::done(c));
            bar.set_message(format!("ok {} failed {}", c.ok, c.failed));
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LINE_EVERY {
            *last = Instant::now();
            self.line(c);
        }
    }

    fn line(&self, c: &Counts) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let done = Self::done(c);
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        errln!("{}: {done}{of} items, ok {} failed {} skipped {} ({:.0}/s)", self.step, c.ok, c.failed, c.skipped, done as f64 / secs);
    }

    pub(super) fn finish(&self, c: &Counts) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => self.line(c),
        }
    }
}
