//! The content-addressed blob folder: a message body lives at
//! `<blob_dir>/ab/cd/<sha256 hex>`, written so that a file under its final name is
//! always complete and durable (temp file, fsync, rename, directory fsync).

use super::StoreError;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of concurrent writers of the same body in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob folder on a local disk or a NAS mount.
#[derive(Clone, Debug)]
pub(crate) struct BlobStore {
    root: PathBuf,
}

fn blob_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Blob {
        path: path.display().to_string(),
        source,
    }
}

/// The SHA-256 of a body, lower-case hex: the blob's name.
pub(crate) fn blob_name(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Whether `name` looks like a blob name; anything else must never reach a path.
pub(crate) fn is_blob_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Makes a directory entry durable: on POSIX a rename or create is only on disk
/// once the directory holding it is fsynced.
fn sync_directory(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| blob_error(path, source))
}

impl BlobStore {
    /// Opens (creating if needed) the blob folder.
    pub(crate) fn open(root: &Path) -> Result<BlobStore, StoreError> {
        fs::create_dir_all(root).map_err(|source| blob_error(root, source))?;
        if !root.is_dir() {
            return Err(blob_error(
                root,
                std::io::Error::other("the blob folder is not a directory"),
            ));
        }
        Ok(BlobStore {
            root: root.to_path_buf(),
        })
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(&name[0..2]).join(&name[2..4]).join(name)
    }

    /// Stores `data` durably and returns its name. Blocking: call from a blocking
    /// thread. A body that exists already is not rewritten.
    pub(crate) fn put(&self, data: &[u8]) -> Result<String, StoreError> {
        let name = blob_name(data);
        let path = self.path_of(&name);
        let directory = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        self.ensure_directory(&directory)?;
        if let Ok(metadata) = fs::metadata(&path)
            && metadata.is_file()
            && metadata.len() == data.len() as u64
        {
            // Another writer may have renamed it but not yet fsynced the folder;
            // syncing again costs little and keeps our own promise honest.
            sync_directory(&directory)?;
            return Ok(name);
        }
        let temp = directory.join(format!(
            ".tmp-{}-{}-{}",
            &name[..16],
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(data)?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(blob_error(&path, source));
        }
        sync_directory(&directory)?;
        Ok(name)
    }

    /// Creates `<root>/ab/cd` if missing, fsyncing each parent that gained an entry.
    fn ensure_directory(&self, directory: &Path) -> Result<(), StoreError> {
        if directory.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut current = directory.to_path_buf();
        while current != self.root && !current.is_dir() {
            missing.push(current.clone());
            match current.parent() {
                Some(parent) => current = parent.to_path_buf(),
                None => break,
            }
        }
        for path in missing.iter().rev() {
            match fs::create_dir(path) {
                Ok(()) => {}
                Err(error)
                    if error.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(source) => return Err(blob_error(path, source)),
            }
            if let Some(parent) = path.parent() {
                sync_directory(parent)?;
            }
        }
        Ok(())
    }

    /// Reads a body by name. Blocking.
    pub(crate) fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        if !is_blob_name(name) {
            return Err(StoreError::Invalid {
                what: "blob name",
                reason: format!("{name:?} is not a SHA-256 hex digest"),
            });
        }
        let path = self.path_of(name);
        fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound(format!("blob {name}"))
            } else {
                blob_error(&path, source)
            }
        })
    }

    /// Where a blob lives (for tests and operators).
    pub(crate) fn path(&self, name: &str) -> Option<PathBuf> {
        is_blob_name(name).then(|| self.path_of(name))
    }
}
