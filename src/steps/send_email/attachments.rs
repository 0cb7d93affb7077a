//! The attachment files of one step run, read without blocking the runtime's threads.
//!
//! A literal path (no `{{`) names the same file for every item: it is read on first use and
//! shared by every item of the step (a 2 MB brochure for 10,000 emails is one read, not 10,000).
//! A templated path is read for each item. The cache lives for one step run (the runner), not in
//! the plan, so a scheduler that keeps its plan still picks up a file changed between runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::compiled::Compiled;
use super::message::{attachment_error, MessageError};

pub struct AttachmentFiles {
    /// By attachment index: the cell of a literal path, `None` for a templated one.
    literal: Vec<Option<OnceCell<Arc<Vec<u8>>>>>,
}

impl AttachmentFiles {
    pub fn for_step(c: &Compiled) -> AttachmentFiles {
        AttachmentFiles { literal: c.literal_attachments().iter().map(|&l| l.then(OnceCell::new)).collect() }
    }

    /// The contents of `paths` (one item's rendered attachment paths, in the step's order). A
    /// failed read is not cached: the next item tries again, and fails with the same words.
    pub async fn load(&self, paths: &[PathBuf]) -> Result<Vec<Arc<Vec<u8>>>, MessageError> {
        let mut out = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            let bytes = match self.literal.get(i).and_then(Option::as_ref) {
                Some(cell) => cell.get_or_try_init(|| read(path)).await?.clone(),
                None => read(path).await?,
            };
            out.push(bytes);
        }
        Ok(out)
    }
}

async fn read(path: &Path) -> Result<Arc<Vec<u8>>, MessageError> {
    tokio::fs::read(path).await.map(Arc::new).map_err(|e| attachment_error(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_literal_path_is_read_once_per_step_and_a_templated_one_per_item() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("m.txt.hbs"), "Hi").unwrap();
        std::fs::write(d.path().join("terms.pdf"), "terms v1").unwrap();
        std::fs::write(d.path().join("r-1.pdf"), "receipt 1").unwrap();
        std::fs::write(d.path().join("r-2.pdf"), "receipt 2").unwrap();
        let spec =
            serde_saphyr::from_str("to: a@x.org\nsubject: Hi\ntemplate: m\nattachments: [terms.pdf, \"r-{{item.n}}.pdf\"]\n").unwrap();
        let c = Compiled::compile(&spec, d.path(), |p, m| panic!("{p}: {m}")).unwrap();
        assert_eq!(c.literal_attachments(), [true, false]);
        let files = AttachmentFiles::for_step(&c);
        let paths = |n: u32| c.render(&json!({"item": {"n": n}}), Some("s@x.org"), "k", d.path(), "k").unwrap().attachments;

        let first = files.load(&paths(1)).await.unwrap();
        assert_eq!((first[0].as_slice(), first[1].as_slice()), (&b"terms v1"[..], &b"receipt 1"[..]));
        // The literal file is not read again (a change on disk is seen by the next step run);
        // the templated one is read for each item.
        std::fs::write(d.path().join("terms.pdf"), "terms v2").unwrap();
        let second = files.load(&paths(2)).await.unwrap();
        assert!(Arc::ptr_eq(&first[0], &second[0]));
        assert_eq!(second[1].as_slice(), b"receipt 2");
        assert_eq!(AttachmentFiles::for_step(&c).load(&paths(2)).await.unwrap()[0].as_slice(), b"terms v2");

        let e = files.load(&paths(3)).await.unwrap_err();
        assert!(matches!(e, MessageError::Attachment { ref path, .. } if path.ends_with("r-3.pdf")), "{e}");
    }
}
