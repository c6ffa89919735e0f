//! File output: atomic writes (temporary file, then rename) for regular files, direct writes
//! for everything else.
//!
//! Issue 7: a crash or Ctrl-C must never leave a half-written model or result file. The bytes go
//! to a temporary file in the destination's directory (so the rename stays on one file system),
//! are flushed to disk, and only then replace the destination in one `rename`.
//!
//! Issue 14: only a regular file (or a path that does not exist yet) is replaced that way. A
//! symbolic link is followed to its target, which is replaced (the link stays a link); a device
//! (`/dev/null`), a FIFO, a socket and the process's own streams (`/dev/stdout`, `/dev/fd/N`)
//! are opened and written directly, streaming, as a shell redirection would. The replaced file keeps
//! its permission bits; a read-only destination is refused unless
//! [`WriteOptions::replace_read_only`] is set (`--force`). The temporary's name is fresh: a
//! stale one left by an earlier process with the same pid is skipped, never an error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Names tried for a temporary before giving up (each taken one is skipped).
const TEMP_ATTEMPTS: u32 = 1000;

/// Symbolic links followed before a destination is called a loop.
const MAX_LINKS: usize = 40;

/// The temporary files of the [`AtomicFile`]s neither committed nor dropped yet.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // The list stays consistent even if a holder panicked (push and retain only).
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary files of every [`AtomicFile`] not yet committed or dropped, and
/// returns how many there were. For an interrupt handler (Ctrl-C, SIGTERM, SIGHUP): the process
/// is about to exit without running destructors, which would leave those hidden files behind.
/// The destinations are untouched: they keep their old content, or do not exist.
pub fn remove_pending_temporaries() -> usize {
    let mut list = pending();
    for tmp in list.iter() {
        let _ = fs::remove_file(tmp);
    }
    let n = list.len();
    list.clear();
    n
}

/// How an output file may be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Replace a destination whose permissions say read-only (`--force`); refused otherwise.
    pub replace_read_only: bool,
}

/// Write `bytes` to `path` atomically: readers see the old file or the complete new one.
///
/// The temporary file (`.<name>.tmp.<pid>.<n>` beside `path`) is removed on any error. See
/// [`AtomicFile::create`] for what is not a regular file.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, WriteOptions::default())
}

/// [`write_atomic`] with options (e.g. `--force` for a read-only destination).
pub fn write_atomic_with(
    path: impl AsRef<Path>,
    bytes: &[u8],
    options: WriteOptions,
) -> io::Result<()> {
    let mut file = AtomicFile::create_with(path, options)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Whether `a` and `b` are the same file (the same inode, through links, `..` or hard links).
/// A path that does not exist is no file, so `false`.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    }
}

/// Refuse an output path that names one of the inputs (`fit --data d.csv -o d.csv` would
/// destroy the data). `inputs` pairs each input path with its flag for the message.
pub fn refuse_overwriting_inputs(out: &Path, inputs: &[(&str, &Path)]) -> io::Result<()> {
    for (flag, input) in inputs {
        if same_file(out, input) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the output {} is the same file as {flag} {}: refusing to overwrite an input",
                    out.display(),
                    input.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The largest text file read whole (a graph, a configuration, a reference JSON): 64 MiB.
/// Such files are kilobytes; `/dev/zero` or a wrong path to a huge file is refused instead of
/// being read into memory.
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// Read `path` as UTF-8 text, refusing it past [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    File::open(path)?
        .take(MAX_TEXT_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TEXT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB, the limit for this kind of file",
                MAX_TEXT_BYTES >> 20
            ),
        ));
    }
    Ok(text)
}

/// Where an [`AtomicFile`]'s bytes go.
enum Target {
    /// A temporary beside `dest`, renamed over it on commit.
    Temp {
        file: BufWriter<File>,
        tmp: PathBuf,
        /// The final path, symbolic links resolved.
        dest: PathBuf,
        /// The replaced file's metadata: its owner (where allowed) and permissions are given
        /// to the new one.
        replaced: Option<Box<fs::Metadata>>,
    },
    /// A device, FIFO or other special file, written in place.
    Direct(BufWriter<File>),
    /// Committed or failed.
    Done,
}

/// A file written through a temporary beside its destination, for output too large to buffer
/// (a million-row CSV). Nothing appears at the destination until [`AtomicFile::commit`]; dropping
/// it uncommitted (an error, a panic) removes the temporary, and so does
/// [`remove_pending_temporaries`] (the `carma` command calls it on Ctrl-C, SIGTERM and SIGHUP).
/// A process killed outright can leave the hidden temporary behind, never a half-written
/// destination. A destination that is not a regular file (a device, a FIFO, `/dev/stdout`) is
/// written directly instead.
pub struct AtomicFile {
    target: Target,
    path: PathBuf,
}

/// A path written in place rather than replaced: the process's own streams (`/dev/stdout`,
/// `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`, which must reach the stream whatever it is,
/// even a regular file the shell redirected to), or an existing file that is not a regular file
/// or a directory (a device, a FIFO, a socket). `/dev/shm/x.csv`, a regular file, is replaced
/// atomically like any other.
fn written_directly(path: &Path) -> io::Result<bool> {
    if ["/dev/stdout", "/dev/stderr", "/dev/fd", "/proc/self/fd"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return Ok(true);
    }
    match fs::metadata(path) {
        Ok(m) => Ok(!m.is_file() && !m.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `path` with every symbolic link of its last component followed (the target may not exist
/// yet: a dangling link is written through, creating its target).
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(parent) if target.is_relative() => parent.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{}: more than {MAX_LINKS} symbolic links (a loop?)",
            path.display()
        ),
    ))
}

impl AtomicFile {
    /// Create the temporary file for `path` (or open `path` itself when it is a device, a FIFO
    /// or `/dev/stdout`); a read-only destination is refused.
    pub fn create(path: impl AsRef<Path>) -> io::Result<AtomicFile> {
        AtomicFile::create_with(path, WriteOptions::default())
    }

    /// [`AtomicFile::create`] with options.
    pub fn create_with(path: impl AsRef<Path>, options: WriteOptions) -> io::Result<AtomicFile> {
        let path = path.as_ref().to_path_buf();
        let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if written_directly(&path).map_err(with_path)? {
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(with_path)?;
            return Ok(AtomicFile {
                target: Target::Direct(BufWriter::new(file)),
                path,
            });
        }
        let dest = resolve_links(&path)?;
        let replaced = match fs::metadata(&dest) {
            Ok(m) if m.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is a directory, not a file", path.display()),
                ));
            }
            Ok(m) => {
                if m.permissions().readonly() && !options.replace_read_only {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "{} is read-only: refusing to replace it (use --force to replace it anyway)",
                            path.display()
                        ),
                    ));
                }
                Some(Box::new(m))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(with_path(e)),
        };
        let (file, tmp) = create_temporary(&dest)?;
        pending().push(tmp.clone());
        Ok(AtomicFile {
            target: Target::Temp {
                file: BufWriter::new(file),
                tmp,
                dest,
                replaced,
            },
            path,
        })
    }

    /// The destination (as given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the bytes go straight to the destination (a device, a FIFO, `/dev/stdout`)
    /// instead of a temporary.
    pub fn is_direct(&self) -> bool {
        matches!(self.target, Target::Direct(_))
    }

    /// Flush, sync to disk, and rename over the destination (a direct destination is only
    /// flushed).
    pub fn commit(mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.target, Target::Done) {
            Target::Direct(mut w) => w.flush(),
            Target::Temp {
                file,
                tmp,
                dest,
                replaced,
            } => {
                // On any error the temporary is removed here (the target is already `Done`).
                let result = (|| {
                    let file = file.into_inner().map_err(|e| e.into_error())?;
                    if let Some(m) = replaced {
                        // The owner first (changing it may clear set-id bits), where allowed:
                        // only root may give a file away, and a user's own file is theirs anyway.
                        #[cfg(unix)]
                        {
                            use std::os::unix::fs::MetadataExt;
                            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
                        }
                        file.set_permissions(m.permissions())?;
                    }
                    file.sync_all()?;
                    drop(file);
                    fs::rename(&tmp, &dest)
                })();
                match result {
                    Ok(()) => {
                        // Renamed: nothing left for Drop or an interrupt to remove.
                        pending().retain(|p| p != &tmp);
                        sync_parent(&dest);
                        Ok(())
                    }
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        pending().retain(|p| p != &tmp);
                        Err(e)
                    }
                }
            }
            Target::Done => Err(io::Error::other("atomic file already finished")),
        }
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        match &mut self.target {
            Target::Temp { file, .. } | Target::Direct(file) => Ok(file),
            Target::Done => Err(io::Error::other("atomic file already finished")),
        }
    }

    #[cfg(test)]
    fn temporary(&self) -> Option<&Path> {
        match &self.target {
            Target::Temp { tmp, .. } => Some(tmp),
            _ => None,
        }
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

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Target::Temp { file, tmp, .. } = std::mem::replace(&mut self.target, Target::Done) {
            // Close before removing (required on some platforms); errors here have no one to go to.
            drop(file);
            let _ = fs::remove_file(&tmp);
            pending().retain(|p| p != &tmp);
        }
    }
}

/// Create a fresh temporary `.<name>.tmp.<pid>.<n>` beside `dest`, skipping names already
/// taken (a stale temporary of an earlier process that had the same pid).
fn create_temporary(dest: &Path) -> io::Result<(File, PathBuf)> {
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' does not name a file", dest.display()),
        )
    })?;
    for _ in 0..TEMP_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp.{}.{n}", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create a temporary file {}: {e}", tmp.display()),
                ));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "no free temporary name beside {} after {TEMP_ATTEMPTS} tries",
            dest.display()
        ),
    ))
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
        let is_pending =
            |f: &AtomicFile| pending().iter().any(|p| Some(p.as_path()) == f.temporary());
        let committed = AtomicFile::create(dir.0.join("a.csv")).unwrap();
        let dropped = AtomicFile::create(dir.0.join("b.csv")).unwrap();
        assert!(is_pending(&committed) && is_pending(&dropped));
        let tmp = committed.temporary().unwrap().to_path_buf();
        committed.commit().unwrap();
        assert!(!pending().contains(&tmp));
        let tmp = dropped.temporary().unwrap().to_path_buf();
        drop(dropped);
        assert!(!pending().contains(&tmp));
        assert_eq!(entries(&dir.0), ["a.csv"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through_and_stays_a_link() {
        let dir = TempDir::new("atomic-link");
        let target = dir.0.join("real.csv");
        fs::write(&target, b"old").unwrap();
        let link = dir.0.join("link.csv");
        std::os::unix::fs::symlink("real.csv", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
        // A dangling link creates its target.
        let dangling = dir.0.join("dangling.csv");
        std::os::unix::fs::symlink("created.csv", &dangling).unwrap();
        write_atomic(&dangling, b"made").unwrap();
        assert_eq!(fs::read(dir.0.join("created.csv")).unwrap(), b"made");
        assert_eq!(
            entries(&dir.0),
            ["created.csv", "dangling.csv", "link.csv", "real.csv"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_destination_keeps_its_mode_and_a_read_only_one_needs_force() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("atomic-mode");
        let path = dir.0.join("model.carma");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"new").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        let err = write_atomic(&path, b"refused").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("read-only"), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let force = WriteOptions {
            replace_read_only: true,
        };
        write_atomic_with(&path, b"forced", force).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"forced");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
        assert_eq!(entries(&dir.0), ["model.carma"]);
    }

    /// Only root may give a file to another user: the check runs as root (CI containers).
    #[cfg(unix)]
    #[test]
    fn the_destination_keeps_its_owner_where_allowed() {
        use std::os::unix::fs::MetadataExt;
        let dir = TempDir::new("atomic-owner");
        let path = dir.0.join("out.csv");
        fs::write(&path, b"old").unwrap();
        let me = fs::metadata(&path).unwrap().uid();
        if me != 0 {
            // Not root: the file stays the user's, and the write succeeds.
            write_atomic(&path, b"new").unwrap();
            assert_eq!(fs::metadata(&path).unwrap().uid(), me);
            return;
        }
        std::os::unix::fs::chown(&path, Some(1234), Some(4321)).unwrap();
        write_atomic(&path, b"new").unwrap();
        let m = fs::metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 4321));
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_stale_temporary_with_our_pid_is_skipped() {
        let dir = TempDir::new("atomic-stale");
        let path = dir.0.join("out.txt");
        // Every name this process could try next is taken by an earlier process's leftovers.
        let next = COUNTER.load(Ordering::Relaxed);
        let pid = std::process::id();
        for n in next..next + 5 {
            fs::write(dir.0.join(format!(".out.txt.tmp.{pid}.{n}")), b"stale").unwrap();
        }
        write_atomic(&path, b"fresh").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"fresh");
        // The stale files are not ours to remove; the destination exists, nothing else was added.
        assert_eq!(entries(&dir.0).len(), 6);
    }

    #[test]
    fn devices_are_written_directly() {
        let f = AtomicFile::create("/dev/null").unwrap();
        assert!(f.is_direct());
        f.commit().unwrap();
        assert!(!fs::metadata("/dev/null").unwrap().file_type().is_file());
        let mut f = AtomicFile::create("/dev/full").unwrap();
        assert!(f.is_direct());
        f.write_all(&[0u8; 64 * 1024])
            .and_then(|()| f.flush())
            .unwrap_err();
        // A regular file under /dev (tmpfs) is replaced atomically like any other.
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let path = shm.join(format!("carma-io-test-{}", std::process::id()));
            let f = AtomicFile::create(&path).unwrap();
            assert!(!f.is_direct());
            f.commit().unwrap();
            assert!(fs::metadata(&path).unwrap().is_file());
            fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn same_file_sees_through_links_and_dot_dot() {
        let dir = TempDir::new("atomic-same");
        let a = dir.0.join("a.csv");
        fs::write(&a, b"x").unwrap();
        let sub = dir.0.join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(same_file(&a, &sub.join("../a.csv")));
        fs::hard_link(&a, dir.0.join("b.csv")).unwrap();
        assert!(same_file(&a, &dir.0.join("b.csv")));
        assert!(!same_file(&a, &dir.0.join("missing.csv")));
        fs::write(dir.0.join("c.csv"), b"x").unwrap();
        assert!(!same_file(&a, &dir.0.join("c.csv")));
        let err = refuse_overwriting_inputs(&dir.0.join("b.csv"), &[("--data", &a)]).unwrap_err();
        assert!(err.to_string().contains("--data"), "{err}");
    }
}

/// The largest model file read (16 MiB). A trained bundle is tens of kilobytes (Loan: about
/// 30 KB) and the core's limits (64 features, 64 layers per network) keep any valid one far
/// below this; a larger file is refused before it is read.
pub const MAX_MODEL_BYTES: u64 = 16 << 20;

/// Why a model file's bytes could not be read (the core judges the bytes themselves).
#[derive(Debug, thiserror::Error)]
pub enum ModelReadError {
    /// Opening or reading failed.
    #[error("cannot read model file {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },
    /// The file is, or announces, more than [`MAX_MODEL_BYTES`].
    #[error(
        "{file}: {what}, over the limit for a model file ({} MiB; a trained model is tens of KB)",
        MAX_MODEL_BYTES >> 20
    )]
    TooLarge {
        /// The file.
        file: String,
        /// Its size or what its header announces.
        what: String,
    },
}

/// A model file's bytes, bounded: the 14-byte header is read first; without the magic bytes
/// only it is returned (the core then says "bad magic bytes"); otherwise the announced length
/// (plus one byte, so trailing bytes are still seen) is read, and a file announcing or holding
/// more than [`MAX_MODEL_BYTES`] is refused, so `/dev/zero` or a huge file is refused at once
/// instead of being read whole.
pub fn read_model_bytes(path: &Path) -> Result<Vec<u8>, ModelReadError> {
    use carma_core::format::{HEADER_LEN, MAGIC, TRAILER_LEN};
    use std::io::Read;
    let file_name = path.display().to_string();
    let cannot = |source| ModelReadError::Io {
        file: file_name.clone(),
        source,
    };
    let file = File::open(path).map_err(cannot)?;
    let limit = |what: String| ModelReadError::TooLarge {
        file: file_name.clone(),
        what,
    };
    if let Ok(m) = file.metadata()
        && m.is_file()
        && m.len() > MAX_MODEL_BYTES
    {
        return Err(limit(format!("{} bytes", m.len())));
    }
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    let mut file = file.take(HEADER_LEN as u64);
    file.read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() < HEADER_LEN || bytes[..8] != MAGIC {
        return Ok(bytes);
    }
    let body = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    let total = (HEADER_LEN + TRAILER_LEN) as u64 + u64::from(body);
    if total > MAX_MODEL_BYTES {
        return Err(limit(format!("its header announces {total} bytes")));
    }
    let mut file = file.into_inner().take(total + 1 - HEADER_LEN as u64);
    file.read_to_end(&mut bytes).map_err(cannot)?;
    Ok(bytes)
}
