//! The `cxflow` command: parses the command line, calls the library, prints errors, picks the exit code.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cxflow::cli::{self, Project, RunArgs, RunsArgs};
use cxflow::secrets::redact_everywhere;

#[derive(Parser)]
#[command(name = "cxflow", version, about = "Run customer-experience back-office workflows written in YAML")]
struct Args {
    /// The project folder (holds cxflow.yaml, workflows/, templates/); default: the current folder.
    #[arg(short = 'C', long = "project", global = true, default_value = ".")]
    project: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check workflow files without running anything (a file, or every file in a folder).
    Validate { path: Option<PathBuf> },
    /// Run a workflow once, now.
    Run {
        /// A workflow file, or a workflow name from the workflows folder.
        workflow: String,
        /// A parameter, `name=value` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Render and check everything the run would do, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        workflow: Option<String>,
        /// running, succeeded, failed, partial, interrupted or skipped.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// List the ids a route step remembers as routed (a later run skips them), one per line with
    /// the run that routed it last.
    Routed {
        /// The workflow's `name:`.
        workflow: String,
        /// The route step's `id:`.
        step: String,
    },
    /// Show one run: its steps, failed items, artifacts and uncertain deliveries.
    Show {
        run_id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Run again what did not succeed in a run.
    Resume {
        run_id: i64,
        /// Re-run every item of this step and the steps after it.
        #[arg(long)]
        from: Option<String>,
    },
    /// Record what happened to deliveries a run left uncertain (docs/email.md, "Uncertain").
    Resolve {
        run_id: i64,
        /// Item keys of the uncertain deliveries (`cxflow show RUN` lists them).
        items: Vec<String>,
        /// Every uncertain delivery of the run.
        #[arg(long)]
        all: bool,
        /// `sent`: it reached the other side, never send it again; `not-sent`: the next resume sends it.
        #[arg(long = "as", value_name = "sent|not-sent")]
        decision: String,
        /// Who decided (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Pause a workflow's schedule: its fires are recorded as skipped (not caught up later) until unpaused.
    Pause {
        /// The workflow's `name:`.
        workflow: String,
        /// Why, shown with the skipped fires and in `cxflow next`.
        #[arg(long)]
        reason: Option<String>,
        /// Who paused it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Lift a pause: the workflow's next fire runs.
    Unpause {
        workflow: String,
        /// Who unpaused it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Stop a running run (in any process): no new items, it ends `interrupted`; `cxflow resume` continues it.
    Cancel {
        run_id: i64,
        /// Who cancelled it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Print the `password_hash` for a dashboard user in cxflow.yaml; reads the password on stdin.
    HashPassword,
    /// Print the JSON Schema of the workflow format (for editor completion and checks).
    Schema,
    /// Run every workflow with a `schedule:` on its cron until SIGTERM / Ctrl-C (docs/scheduling.md).
    Serve,
    /// Run items that other nodes share (`spread_items: true`, PostgreSQL), with no schedule, until SIGTERM / Ctrl-C (docs/scaling.md).
    Worker,
    /// Serve the dashboard, the HTTP API and /metrics over the run log, without scheduling (docs/dashboard.md).
    Ui,
    /// List upcoming fire times of every scheduled workflow, in its zone and local time.
    Next {
        /// Fire times per workflow.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// List fire times after this instant (RFC 3339, e.g. 2025-03-08T12:00:00Z) instead of now.
        #[arg(long)]
        after: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Apply retention now: delete old runs and their artifacts, reclaim run log space.
    Prune,
    /// List the cxflow processes running workflows on this run log (serve nodes, runs, resumes), with their leases.
    Nodes {
        /// Also list processes whose lease lapsed (kept until retention removes them).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Copy a SQLite run log into an empty PostgreSQL database, ids kept (docs/postgres.md).
    MigrateLog {
        /// The PostgreSQL database to fill: `postgres://user@host/database` (it must exist and be empty).
        #[arg(long, value_name = "URL")]
        to: String,
        /// The SQLite run log to copy (default: the project's `database_url`).
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// Rows copied per statement.
        #[arg(long, default_value_t = 1000, value_name = "ROWS", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
    },
    /// Serve the demo returns portal on 127.0.0.1 (what the sample workflow and tests fill in).
    DemoPortal {
        #[arg(long, default_value_t = 8087)]
        port: u16,
        #[arg(long, default_value = "demo")]
        user: String,
        #[arg(long, default_value = "demo-pass")]
        password: String,
        /// Log a session out after it submitted this many records (exercises re-login).
        #[arg(long, value_name = "N")]
        expire_after: Option<u32>,
        /// Show a cookie banner over the form until it is accepted.
        #[arg(long)]
        cookie_banner: bool,
        /// Wait this long before answering each submission.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        submit_delay_ms: u64,
        /// Refuse a return whose customer name is empty, with a visible error (exercises `rejected_if`).
        #[arg(long)]
        require_name: bool,
        /// Log a session out when it posts its Nth record, answering with the login page (nothing stored).
        #[arg(long, value_name = "N")]
        expire_on_post: Option<u32>,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CXFLOW_LOG").unwrap_or_else(|_| "warn,cxflow=info".into()))
        .with_writer(cxflow::secrets::redacting_stderr)
        // Colours only on a terminal: the journal and log files would get raw escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // On a failed write it would `eprintln!`, which panics when stderr is a broken pipe.
        .log_internal_errors(false)
        .init();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { cli::exit::INVALID } else { cli::exit::OK };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if matches!(
        args.command,
        Command::Validate { .. }
            | Command::Runs { .. }
            | Command::Show { .. }
            | Command::Routed { .. }
            | Command::Nodes { .. }
            | Command::Schema
    ) {
        cli::quiet_broken_pipe();
    }
    let code = match tokio::runtime::Runtime::new() {
        // On a runtime worker rather than polled by `block_on`: there, every socket and run-log
        // answer needed a wake-up of the main thread (30% of the context switches of an email run).
        Ok(rt) => rt.block_on(async {
            match tokio::spawn(dispatch(args)).await {
                Ok(r) => r,
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(e) => Err(cli::CliError::Other(e.into())),
                },
            }
        }),
        Err(e) => Err(cli::CliError::Other(e.into())),
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            match &e {
                // Errors may quote a record or a file: secrets masked, and escaped what a terminal would run.
                cli::CliError::Invalid(msg) => cxflow::errln!("{}", cli::term::printable(&redact_everywhere(msg.trim_end()))),
                cli::CliError::Other(err) => cxflow::errln!("error: {}", cli::term::printable(&redact_everywhere(&format!("{err:#}")))),
            }
            std::process::exit(e.exit_code());
        }
    }
}

async fn dispatch(args: Args) -> cli::Result<i32> {
    match args.command {
        Command::Schema => return cli::schema(),
        Command::HashPassword => return cli::hash_password(),
        Command::DemoPortal { port, user, password, expire_after, cookie_banner, submit_delay_ms, require_name, expire_on_post } => {
            let opts = cxflow::demo_portal::PortalOptions {
                user,
                password,
                expire_after,
                cookie_banner,
                submit_delay_ms,
                require_name,
                expire_on_post,
            };
            return cli::demo_portal(port, opts).await;
        }
        _ => {}
    }
    let project = Project::open(&args.project)?;
    match args.command {
        Command::Validate { path } => cli::validate(&project, path.as_deref()),
        Command::Run { workflow, vars, dry_run } => cli::run(&project, RunArgs { workflow, vars, dry_run }).await,
        Command::Runs { workflow, status, limit, json } => cli::runs(&project, RunsArgs { workflow, status, limit, json }).await,
        Command::Show { run_id, json } => cli::show(&project, run_id, json).await,
        Command::Routed { workflow, step } => cli::routed(&project, &workflow, &step).await,
        Command::Resume { run_id, from } => cli::resume(&project, run_id, from).await,
        Command::Resolve { run_id, items, all, decision, by } => {
            cli::resolve(&project, cli::ResolveArgs { run_id, items, all, decision, by }).await
        }
        Command::Pause { workflow, reason, by } => cli::pause(&project, &workflow, reason, by).await,
        Command::Unpause { workflow, by } => cli::unpause(&project, &workflow, by).await,
        Command::Cancel { run_id, by } => cli::cancel(&project, run_id, by).await,
        Command::Schema | Command::HashPassword | Command::DemoPortal { .. } => unreachable!("handled above: they need no project"),
        Command::Serve => cli::serve(&project).await,
        Command::Worker => cli::worker(&project).await,
        Command::Ui => cli::ui(&project).await,
        Command::Nodes { all, json } => cli::nodes(&project, all, json).await,
        Command::Next { count, after } => cli::next(&project, count, after.unwrap_or_else(chrono::Utc::now)).await,
        Command::Prune => cli::prune(&project).await,
        Command::MigrateLog { to, from, batch_size } => {
            cli::migrate_log(&project, cli::MigrateLogArgs { to, from, batch_size: batch_size as usize }).await
        }
    }
}
