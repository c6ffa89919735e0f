//! File output: atomic writes (temporary file, then rename).
//!
//! Issue 7: a crash or Ctrl-C must never leave a half-written model or result file. The bytes go
//! to a temporary file in the destination's directory (so the rename stays on one file system),
//! are flushed to disk, and only then replace the destination in one `rename`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary files of the [`AtomicFile`]s neither committed nor dropped yet.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // The list stays consistent even if a holder panicked (push and retain only).
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary files of every [`AtomicFile`] not yet committed or dropped, and
/// returns how many there were. For an interrupt handler (Ctrl-C): the process is about to exit
/// without running destructors, which would leave those hidden files behind. The destinations
/// are untouched: they keep their old content, or do not exist.
pub fn remove_pending_temporaries() -> usize {
    let mut list = pending();
    for tmp in list.iter() {
        let _ = fs::remove_file(tmp);
    }
    let n = list.len();
    list.clear();
    n
}

/// Write `bytes` to `path` atomically: readers see the old file or the complete new one.
///
/// The temporary file (`.<name>.tmp.<pid>.<n>` beside `path`) is removed on any error.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A file written through a temporary beside its destination, for output too large to buffer
/// (a million-row CSV). Nothing appears at the destination until [`AtomicFile::commit`]; dropping
/// it uncommitted (an error, a panic) removes the temporary, and so does
/// [`remove_pending_temporaries`] (the `carma` command calls it on Ctrl-C). A process killed
/// outright can leave the hidden temporary behind, never a half-written destination.
pub struct AtomicFile {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Create the temporary file for `path`.
    pub fn create(path: impl AsRef<Path>) -> io::Result<AtomicFile> {
        let path = path.as_ref().to_path_buf();
        let tmp = temp_path(&path)?;
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        pending().push(tmp.clone());
        Ok(AtomicFile {
            file: Some(BufWriter::new(file)),
            tmp,
            path,
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flush, sync to disk, and rename over the destination.
    pub fn commit(mut self) -> io::Result<()> {
        let writer = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("atomic file already finished"))?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        // Renamed: nothing left for Drop or an interrupt to remove.
        pending().retain(|p| p != &self.tmp);
        self.tmp = PathBuf::new();
        sync_parent(&self.path);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

impl AtomicFile {
    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("atomic file already finished"))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Close before removing (required on some platforms); errors here have no one to go to.
            drop(self.file.take());
            let _ = fs::remove_file(&self.tmp);
            pending().retain(|p| p != &self.tmp);
        }
    }
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' does not name a file", path.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{n}", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

/// Make the rename itself durable where the platform allows opening a directory.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        // Not all platforms support fsync on a directory; the data itself is already synced.
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

#[cfg(test)]
impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("carma-train-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_creates_and_replaces_without_leftovers() {
        let dir = TempDir::new("atomic");
        let path = dir.0.join("model.carma");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(entries(&dir.0), ["model.carma"]);
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"streamed").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"streamed");
        assert_eq!(entries(&dir.0), ["model.carma"]);
    }

    #[test]
    fn failed_write_atomic_keeps_the_old_file_and_removes_the_temporary() {
        let dir = TempDir::new("atomic-fail");
        // The destination is a non-empty directory: the rename fails after the data is written.
        let target = dir.0.join("out");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"x").unwrap();
        assert!(write_atomic(&target, b"data").is_err());
        assert_eq!(entries(&dir.0), ["out"]);
        assert_eq!(fs::read(target.join("keep")).unwrap(), b"x");
        // A missing directory fails before anything is created.
        assert!(write_atomic(dir.0.join("missing/file"), b"data").is_err());
        assert_eq!(entries(&dir.0), ["out"]);
        // An uncommitted streaming file leaves nothing behind.
        {
            let mut f = AtomicFile::create(dir.0.join("big.csv")).unwrap();
            f.write_all(b"a,b\n1,2\n").unwrap();
            assert_eq!(entries(&dir.0).len(), 2);
        }
        assert_eq!(entries(&dir.0), ["out"]);
        // A path without a file name is refused.
        let err = write_atomic(Path::new("/"), b"data").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// What `remove_pending_temporaries` would remove (calling it here would remove other
    /// tests' temporaries; the CLI test interrupts a real `carma recommend` instead).
    #[test]
    fn open_atomic_files_are_pending_until_committed_or_dropped() {
        let dir = TempDir::new("atomic-pending");
        let is_pending = |f: &AtomicFile| pending().contains(&f.tmp);
        let committed = AtomicFile::create(dir.0.join("a.csv")).unwrap();
        let dropped = AtomicFile::create(dir.0.join("b.csv")).unwrap();
        assert!(is_pending(&committed) && is_pending(&dropped));
        let tmp = committed.tmp.clone();
        committed.commit().unwrap();
        assert!(!pending().contains(&tmp));
        let tmp = dropped.tmp.clone();
        drop(dropped);
        assert!(!pending().contains(&tmp));
        assert_eq!(entries(&dir.0), ["a.csv"]);
    }
}
