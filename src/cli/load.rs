//! The project folder: configuration, workflow lookup, and spec + plan with errors as exit code 2.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CliError, Result};
use crate::config::Config;
use crate::engine::Plan;
use crate::spec::SpecFile;
use crate::store::Store;

pub struct Project {
    pub dir: PathBuf,
    pub config: Arc<Config>,
}

impl Project {
    /// Load `cxflow.yaml` (optional) and the `CXFLOW_*` environment for the project folder `dir`.
    pub fn open(dir: &Path) -> Result<Project> {
        let config = Config::load(dir, |k| std::env::var(k).ok()).map_err(|d| CliError::Invalid(d.to_string()))?;
        crate::store::set_lease(config.lease);
        Ok(Project { dir: dir.to_path_buf(), config: Arc::new(config) })
    }

    pub fn workflows_dir(&self) -> PathBuf {
        self.config.path(&self.dir, &self.config.workflows_dir)
    }

    /// A workflow, read, by path, by its `name:` in the workflows folder, or by file name there
    /// (`ticket-follow-up` → `workflows/ticket-follow-up.yaml`) when no workflow has that name.
    pub fn load_workflow(&self, arg: &str) -> Result<SpecFile> {
        let load = |f: &Path| crate::spec::load(f).map_err(|d| CliError::Invalid(d.to_string()));
        let p = Path::new(arg);
        if p.is_file() {
            return load(p);
        }
        if let Some(spec) = super::names::spec_by_name(self, arg)? {
            return Ok(spec);
        }
        for ext in ["yaml", "yml"] {
            let c = self.workflows_dir().join(format!("{arg}.{ext}"));
            if c.exists() {
                return load(&c);
            }
        }
        Err(CliError::Invalid(format!(
            "no workflow `{arg}`: give a workflow's `name:`, a file path, or the name of a file in `{}` (`cxflow validate` lists them)",
            self.workflows_dir().display()
        )))
    }

    /// Load and validate one workflow file; all its errors become one `Invalid` message.
    pub fn plan(&self, file: &Path) -> Result<Plan> {
        let spec = crate::spec::load(file).map_err(|d| CliError::Invalid(d.to_string()))?;
        self.plan_spec(spec).map_err(|d| CliError::Invalid(d.to_string()))
    }

    /// Plans a workflow file already read, and refuses it when another workflow file of the
    /// project has its name. The file is read once: a workflow of 10,000 steps was parsed four
    /// times on its way to a run (found by name, planned, and twice in the name check).
    pub(crate) fn plan_unique(&self, spec: SpecFile) -> Result<Plan> {
        let spec = Arc::new(spec);
        let plan = crate::plan::build(spec.clone(), &self.config, &self.dir, &crate::steps::REGISTRY)
            .map_err(|d| CliError::Invalid(d.to_string()))?;
        super::names::check_unique_spec(self, &spec)?;
        Ok(plan)
    }

    /// `plan_unique` for a workflow file.
    pub(crate) fn plan_file_unique(&self, file: &Path) -> Result<Plan> {
        let spec = crate::spec::load(file).map_err(|d| CliError::Invalid(d.to_string()))?;
        self.plan_unique(spec)
    }

    /// Plans a workflow file already read.
    pub(crate) fn plan_spec(&self, spec: crate::spec::SpecFile) -> std::result::Result<Plan, crate::spec::Diagnostics> {
        crate::plan::build(Arc::new(spec), &self.config, &self.dir, &crate::steps::REGISTRY)
    }

    /// The run log: the SQLite file or the PostgreSQL database `database_url` names.
    pub async fn store(&self) -> Result<Store> {
        let url = self.database_url();
        check_run_log_url(&url)?;
        Store::open(&url).await.map_err(|e| match e {
            // PostgreSQL's "invalid_catalog_name": the server is there, the database is not.
            crate::store::StoreError::Open { ref reason, .. }
                if reason.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000") =>
            {
                CliError::Other(anyhow::anyhow!(
                    "{e}; cxflow creates its tables but not the database: create it first, e.g. `createdb -O USER DATABASE` (docs/postgres.md)"
                ))
            }
            e => e.into(),
        })
    }

    /// The run log URL with a relative SQLite path anchored at the project folder.
    pub fn database_url(&self) -> String {
        let url = &self.config.database_url;
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let (path, query) = rest.split_once('?').map(|(p, q)| (p, Some(q))).unwrap_or((rest, None));
            if !path.is_empty() && !Path::new(path).is_absolute() && !path.starts_with(':') {
                let full = self.dir.join(path);
                return match query {
                    Some(q) => format!("sqlite://{}?{q}", full.display()),
                    None => format!("sqlite://{}", full.display()),
                };
            }
        }
        url.clone()
    }
}

/// The run log is a SQLite file or a PostgreSQL database; anything else is refused here, before
/// sqlx would take `mysql://host/db` for a file name and fail with "unable to open database file".
pub(crate) fn check_run_log_url(url: &str) -> Result<()> {
    if url.starts_with("sqlite:") || crate::store::is_postgres(url) {
        return Ok(());
    }
    Err(CliError::Invalid(format!(
        "`database_url: {}` is not a SQLite or PostgreSQL URL; write it like `sqlite://cxflow.sqlite` (a file in the project folder) or `postgres://user@host/database` (in cxflow.yaml or CXFLOW_DATABASE_URL)",
        crate::store::redact_url(url)
    )))
}

/// Workflow files directly in `dir`, sorted.
pub(crate) fn workflow_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CliError::Invalid(format!("cannot read folder `{}`: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}
