//! The content-addressed blob folder: a message body lives at
//! `<blob_dir>/ab/cd/<sha256 hex>`, written so that a file under its final name is
//! always complete and durable (temp file, fsync, rename, directory fsync).
//! Also lists and removes files for garbage collection (see `garbage`).

use super::StoreError;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How every temp file's name starts; garbage collection removes old ones.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

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
            "{TEMP_PREFIX}{}-{}-{}",
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

    /// Removes a file of the blob folder; its length, or None if it was not there.
    /// Blocking. No directory fsync: a removal lost in a crash leaves an orphan
    /// file, which the next garbage collection removes again.
    pub(crate) fn remove_file(&self, path: &Path) -> Result<Option<u64>, StoreError> {
        let length = match fs::symlink_metadata(path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(blob_error(path, source)),
        };
        match fs::remove_file(path) {
            Ok(()) => Ok(Some(length)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(blob_error(path, source)),
        }
    }

    /// Every `<root>/ab/cd` folder that exists, in name order. At most 65 536. Blocking.
    pub(crate) fn leaf_folders(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut leaves = Vec::new();
        for first in self.subfolders(&self.root)? {
            leaves.extend(self.subfolders(&first)?);
        }
        Ok(leaves)
    }

    /// The two-hex-digit subfolders of `folder`, sorted; anything else is ignored.
    fn subfolders(&self, folder: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let mut found = Vec::new();
        let entries = fs::read_dir(folder).map_err(|source| blob_error(folder, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| blob_error(folder, source))?;
            let name = entry.file_name();
            let is_shard = name.to_str().is_some_and(|name| {
                name.len() == 2 && name.bytes().all(|byte| byte.is_ascii_hexdigit())
            });
            if is_shard && entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                found.push(entry.path());
            }
        }
        found.sort();
        Ok(found)
    }

    /// The blob files and temp files of one leaf folder. Blocking.
    pub(crate) fn files_in(&self, leaf: &Path) -> Result<Vec<FolderFile>, StoreError> {
        let mut files = Vec::new();
        let entries = fs::read_dir(leaf).map_err(|source| blob_error(leaf, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| blob_error(leaf, source))?;
            let Ok(metadata) = entry.metadata() else {
                continue; // removed since the listing
            };
            if !metadata.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = if is_blob_name(&name) {
                FileKind::Blob(name)
            } else if name.starts_with(TEMP_PREFIX) {
                FileKind::Temp
            } else {
                continue; // not ours: never touched
            };
            files.push(FolderFile {
                path: entry.path(),
                kind,
                length: metadata.len(),
                modified: metadata.modified().ok(),
            });
        }
        files.sort_by(|left, right| left.path.cmp(&right.path));
        Ok(files)
    }
}

/// What a file in the blob folder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A finished body, by its name.
    Blob(String),
    /// A writer's temp file (finished writers rename theirs away).
    Temp,
}

/// One file found in a leaf folder.
#[derive(Clone, Debug)]
pub(crate) struct FolderFile {
    pub(crate) path: PathBuf,
    pub(crate) kind: FileKind,
    pub(crate) length: u64,
    /// None where the file system keeps no modification time: such a file is
    /// treated as young and never removed as an orphan.
    pub(crate) modified: Option<std::time::SystemTime>,
}
