//! Test helper: an in-memory file system for the parsers' tests, rooted at a directory.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::parser::FileLoader;

/// Files by absolute path; relative paths resolve against `root`.
pub(crate) struct MemLoader {
    root: PathBuf,
    files: HashMap<PathBuf, Vec<u8>>,
}

impl MemLoader {
    /// An empty file system rooted at `root`.
    pub(crate) fn rooted(root: &str) -> Self {
        Self {
            root: PathBuf::from(root),
            files: HashMap::new(),
        }
    }

    /// Adds a file (relative to the root, or absolute).
    pub(crate) fn with(mut self, path: &str, content: impl AsRef<[u8]>) -> Self {
        self.files
            .insert(self.resolve(Path::new(path)), content.as_ref().to_vec());
        self
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        self.root.join(p)
    }
}

impl FileLoader for MemLoader {
    fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(&self.resolve(path))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    }

    fn display_path(&self, path: &Path) -> PathBuf {
        self.resolve(path)
    }
}
