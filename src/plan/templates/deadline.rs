//! Rendering within a step's `timeout`. A render is synchronous: a template that loops over a big
//! record (`{{#each}}` in `{{#each}}`) would hold a runtime thread past the timeout, which fires
//! only once the render returns. So the engine sets the attempt's deadline here (`with_deadline`),
//! and a render under a deadline writes into an output that fails once the deadline has passed.
//! A render that takes more than a moment moves off the runtime's worker (`block_in_place`) so
//! the other items go on meanwhile; the quick ones, nearly all, stay where they are.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: (Instant, Duration);
}

/// How long a render may run on the runtime's worker before it is redone off it.
const INLINE: Duration = Duration::from_millis(20);

/// Runs `f` with renders bounded by `timeout` from now.
pub async fn with_deadline<F: Future>(timeout: Duration, f: F) -> F::Output {
    DEADLINE.scope((Instant::now() + timeout, timeout), f).await
}

/// A render under a deadline ran over it.
pub(super) struct Overran(pub Duration);

/// Renders with `render`, which writes into the output it is given, within the current
/// deadline, if any. `Err(Ok(e))` is the render's own error.
pub(super) fn bounded<E>(render: impl Fn(&mut DeadlineOutput) -> Result<(), E>) -> Result<String, Result<E, Overran>> {
    let Ok((deadline, timeout)) = DEADLINE.try_with(|d| *d) else {
        let mut out = DeadlineOutput::new(None);
        return render(&mut out).map(|()| out.into_string()).map_err(Ok);
    };
    let run = |until: Instant| {
        let mut out = DeadlineOutput::new(Some(until));
        match render(&mut out) {
            Ok(()) => Ok(out.into_string()),
            Err(_) if out.overran => Err(Err(Overran(timeout))),
            Err(e) => Err(Ok(e)),
        }
    };
    let first = deadline.min(Instant::now() + INLINE);
    match run(first) {
        Err(Err(_)) if first < deadline => off_the_worker(|| run(deadline)),
        other => other,
    }
}

/// On a multi-thread runtime, the worker hands its other tasks to another thread while `f` runs.
fn off_the_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The rendered text, refusing writes after `deadline`.
pub(super) struct DeadlineOutput {
    buf: Vec<u8>,
    deadline: Option<Instant>,
    overran: bool,
}

impl DeadlineOutput {
    fn new(deadline: Option<Instant>) -> DeadlineOutput {
        DeadlineOutput { buf: Vec::new(), deadline, overran: false }
    }

    fn into_string(self) -> String {
        // Handlebars writes only `&str`s.
        String::from_utf8(self.buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl io::Write for DeadlineOutput {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.overran = true;
            return Err(io::Error::new(io::ErrorKind::TimedOut, "render deadline passed"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
