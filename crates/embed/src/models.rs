//! The models of one process: a directory `daarion models install` filled,
//! each model read the first time it is asked for and shared afterwards.
//! A model that is not there yet is an error naming the command that puts
//! it there, and is looked for again on the next call (installing it while
//! DAARION runs is enough).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

use crate::{E5, EmbedError, Table, install};

#[derive(Clone)]
pub struct Models {
    dir: PathBuf,
    table: Arc<Mutex<Option<Arc<Table>>>>,
    encoder: Arc<Mutex<Option<Arc<E5>>>>,
}

impl Models {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            table: Arc::default(),
            encoder: Arc::default(),
        }
    }

    /// The models of `dir` for the whole process: every caller naming the
    /// same directory shares what is read from it (several apps in one
    /// process — tests — read a table once).
    pub fn shared(dir: impl Into<PathBuf>) -> Self {
        static SHARED: LazyLock<Mutex<HashMap<PathBuf, Models>>> = LazyLock::new(Mutex::default);
        let dir = dir.into();
        SHARED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(dir.clone())
            .or_insert_with(|| Self::new(dir))
            .clone()
    }

    /// Where `file` is, if it is there — without reading it; if not, the
    /// error naming the command that puts it there.
    pub fn present(&self, file: &str) -> Result<PathBuf, EmbedError> {
        let path = self.dir.join(file);
        if path.exists() {
            return Ok(path);
        }
        Err(EmbedError::Missing {
            path: path.display().to_string(),
            dir: self.dir.display().to_string(),
        })
    }

    /// The static table (`e5-static.bin`), read once. Blocks while it
    /// reads (~60 MB): call it off the async runtime.
    pub fn table(&self) -> Result<Arc<Table>, EmbedError> {
        self.load(&self.table, install::TABLE, Table::open)
    }

    /// The encoder (`e5-small-q4.bin`), read once. Blocks while it reads.
    pub fn encoder(&self) -> Result<Arc<E5>, EmbedError> {
        self.load(&self.encoder, install::IMAGE, E5::open)
    }

    fn load<T>(
        &self,
        slot: &Mutex<Option<Arc<T>>>,
        file: &str,
        open: impl FnOnce(&Path) -> Result<T, EmbedError>,
    ) -> Result<Arc<T>, EmbedError> {
        // Held while reading, so concurrent first calls read the file once.
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(model) = slot.as_ref() {
            return Ok(model.clone());
        }
        let model = Arc::new(open(&self.present(file)?)?);
        *slot = Some(model.clone());
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_names_the_command_and_is_looked_for_again() {
        let dir = std::env::temp_dir().join(format!("daarion-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let models = Models::new(&dir);
        let Err(missing) = models.table() else {
            unreachable!("no table yet")
        };
        assert!(
            missing.to_string().contains("daarion models install"),
            "{missing}"
        );
        // A file that appears later is read (here: one that is not a
        // table, so the reader's own error comes back).
        std::fs::write(dir.join(install::TABLE), b"nope").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(models.table(), Err(EmbedError::Format(_))));
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
    }
}
