//! Loading a folder of workflow files into schedules without the rest of the project, for the
//! load benchmark. (`cxflow serve` loads through the full workflow validation instead.)

use std::path::Path;

use serde::Deserialize;

use super::compile::{compile, CalendarCache};
use super::policy::WorkflowSchedule;
use crate::spec::schedule::ScheduleSpec;

#[derive(Deserialize)]
struct Head {
    name: String,
    schedule: Option<ScheduleSpec>,
}

pub fn load_folder(dir: &Path, base_dir: &Path) -> Vec<WorkflowSchedule> {
    let mut cals = CalendarCache::default();
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        let Ok(head) = serde_yaml::from_str::<Head>(&text) else { continue };
        let Some(spec) = head.schedule else { continue };
        if let Some(w) = compile(&head.name, &spec, base_dir, &mut cals, &mut |_, _, _| {}) {
            out.push(w);
        }
    }
    out
}
