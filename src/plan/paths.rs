//! Where a path rendered from a template may point. The workflow is trusted and the records are
//! not, so a path written literally is used as written, while a path with `{{` in it must land,
//! once `..` and symlinks are resolved, inside the project folder or inside the folder the
//! template itself starts with (`/srv/files/{{item.name}}`). docs/security.md, "Records stay
//! inside the project", states the rule for users.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The rule for one path field, decided from its source when the workflow is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// False for a literal path: the workflow's author wrote it, so it is not checked.
    templated: bool,
    /// The folder the source writes before its first `{{` (`/srv/files/` of
    /// `/srv/files/{{item.name}}`), if it names one.
    folder: Option<String>,
}

/// A path field of a step: its compiled template and the rule its rendered value must follow.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    pub tpl: super::TemplateRef,
    pub rule: PathRule,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error(
        "path `{rendered}` resolves to `{real}`, outside {allowed}: a path rendered from a template must stay \
         inside the project folder{folder_hint}; write the folder literally before the `{{{{` in the workflow to allow another one"
    )]
    Outside { rendered: String, real: PathBuf, allowed: String, folder_hint: String },
    #[error("path `{rendered}` cannot be resolved at `{at}`: {err}; check the path and the symlinks on it")]
    Unresolvable { rendered: String, at: PathBuf, err: String },
}

impl PathRule {
    pub fn of(src: &str) -> PathRule {
        let Some(open) = src.find("{{") else {
            return PathRule { templated: false, folder: None };
        };
        let before = &src[..open];
        let folder = before.rfind('/').map(|i| before[..=i].to_string()).filter(|f| !f.is_empty());
        PathRule { templated: true, folder }
    }

    /// Resolves `rendered` against `project`. A templated path comes back real (canonical where
    /// it exists), so what is checked is what is opened; a literal one comes back as written.
    pub fn apply(&self, project: &Path, rendered: &str) -> Result<PathBuf, PathError> {
        let joined = absolute(&project.join(rendered));
        if !self.templated {
            return Ok(joined);
        }
        let unresolvable = |(at, e): (PathBuf, io::Error)| PathError::Unresolvable { rendered: rendered.into(), at, err: e.to_string() };
        let real = real_path(&joined).map_err(unresolvable)?;
        let project_real = real_path(&absolute(project)).map_err(unresolvable)?;
        if real.starts_with(&project_real) {
            return Ok(real);
        }
        // A folder that resolves to `/` names nothing: `/{{item.path}}` would allow every file.
        let folder = self.folder.as_ref().map(|f| real_path(&absolute(&project.join(f)))).transpose().map_err(unresolvable)?;
        // A folder inside the project adds nothing, and would only make the message longer.
        let folder = folder.filter(|f| f.parent().is_some() && !f.starts_with(&project_real));
        if let Some(f) = &folder {
            if real.starts_with(f) {
                return Ok(real);
            }
        }
        let allowed = match &folder {
            Some(f) => format!("both the project folder `{}` and `{}`", project_real.display(), f.display()),
            None => format!("the project folder `{}`", project_real.display()),
        };
        let folder_hint = match (&self.folder, &folder) {
            (Some(f), Some(_)) => format!(" or inside `{f}`, the folder the template starts with"),
            _ => String::new(),
        };
        Err(PathError::Outside { rendered: rendered.into(), real, allowed, folder_hint })
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `p` (absolute) with every symlink and `..` resolved on the part that exists; the rest is
/// taken as written, `..` applied to it. A symlink whose target is missing is an error, since a
/// write through it would create the target wherever it points.
pub fn real_path(p: &Path) -> Result<PathBuf, (PathBuf, io::Error)> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            // `out` is real as far as it exists, so its parent is the real `..`.
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => {
                let next = out.join(n);
                out = match next.canonicalize() {
                    Ok(real) => real,
                    Err(_) if next.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) => {
                        let e = io::Error::new(io::ErrorKind::NotFound, "a symlink whose target does not exist");
                        return Err((next, e));
                    }
                    Err(_) => next,
                };
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_comes_from_the_source() {
        assert_eq!(PathRule::of("out/r.csv"), PathRule { templated: false, folder: None });
        assert_eq!(PathRule::of("{{item.file}}"), PathRule { templated: true, folder: None });
        assert_eq!(PathRule::of("/srv/files/r-{{item.n}}.pdf"), PathRule { templated: true, folder: Some("/srv/files/".into()) });
    }

    #[test]
    fn a_rendered_path_stays_inside_the_project_or_its_literal_folder() {
        let d = tempfile::tempdir().unwrap();
        let (project, files) = (d.path().join("p"), d.path().join("files"));
        std::fs::create_dir_all(project.join("in")).unwrap();
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("a.pdf"), "a").unwrap();
        std::os::unix::fs::symlink(&files, project.join("in/link")).unwrap();
        std::os::unix::fs::symlink(d.path().join("nowhere"), project.join("dangling")).unwrap();
        let real = |p: &Path| p.canonicalize().unwrap();

        let any = PathRule::of("{{item.file}}");
        assert_eq!(any.apply(&project, "in/new.csv").unwrap(), real(&project).join("in/new.csv"));
        assert_eq!(any.apply(&project, "in/x/../y.csv").unwrap(), real(&project).join("in/y.csv"));
        for bad in ["../files/a.pdf", "in/link/a.pdf", "/etc/passwd", "../../../../../../etc/passwd", "in/../../files/new"] {
            let e = any.apply(&project, bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("path `{bad}` resolves to `")), "{e}");
            assert!(e.contains("outside the project folder"), "{e}");
        }
        let e = any.apply(&project, "dangling/x").unwrap_err().to_string();
        assert!(e.contains("a symlink whose target does not exist"), "{e}");

        let under = PathRule::of(&format!("{}/{{{{item.file}}}}", files.display()));
        assert_eq!(under.apply(&project, &files.join("a.pdf").to_string_lossy()).unwrap(), real(&files).join("a.pdf"));
        let e = under.apply(&project, &format!("{}/../p2/x", files.display())).unwrap_err().to_string();
        assert!(e.contains(&format!("or inside `{}/`, the folder the template starts with", files.display())), "{e}");
        // `/` names no folder: it does not widen the rule.
        assert!(PathRule::of("/{{item.path}}").apply(&project, "/etc/passwd").is_err());
        // A literal path is the workflow's own: used as written.
        assert_eq!(PathRule::of("/etc/hosts").apply(&project, "/etc/hosts").unwrap(), PathBuf::from("/etc/hosts"));
    }
}
