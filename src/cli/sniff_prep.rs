//! Before and after a live capture: its results must have somewhere to go. A capture window
//! cannot be replayed, so a report path that does not work is refused before capturing, and
//! reports that cannot be written where asked are written to a temporary directory instead.

use std::io;
use std::path::{Path, PathBuf};

use crate::cli::habits::{check_output_dir, check_output_file, fallback_dir};

/// Checks the report directory and the -w file. Without -Z they are checked now, as the user
/// running flowaudit. With -Z USER (reports are written after the switch) a missing directory
/// is made for USER, and the returned paths are for the capture to try as USER right after
/// the switch, before it captures anything.
pub fn prepare(
    dir: &Path,
    write: Option<&Path>,
    user: Option<&str>,
) -> Result<Vec<PathBuf>, String> {
    let Some(user) = user else {
        check_output_dir(dir, "-o")?;
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "-o {}: cannot create the report directory: {e}",
                dir.display()
            )
        })?;
        if let Some(w) = write {
            check_output_file(w, "-w")?;
        }
        return Ok(Vec::new());
    };
    let (uid, gid) = lookup(user)?;
    if dir.exists() && !dir.is_dir() {
        // The same message as without -Z.
        check_output_dir(dir, "-o")?;
    }
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "-o {}: cannot create the report directory: {e}",
                dir.display()
            )
        })?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| {
            format!(
                "-o {}: cannot give the new directory to {user}: {e}",
                dir.display()
            )
        })?;
    }
    let mut writable = vec![dir.to_path_buf()];
    if let Some(w) = write {
        let parent = w.parent().filter(|p| !p.as_os_str().is_empty());
        writable.push(parent.unwrap_or(Path::new(".")).to_path_buf());
    }
    Ok(writable)
}

/// USER's uid and primary gid.
fn lookup(user: &str) -> Result<(u32, u32), String> {
    let name = std::ffi::CString::new(user).map_err(|_| format!("-Z: bad user name {user:?}"))?;
    // SAFETY: getpwnam returns a pointer into static storage, read at once.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(format!("-Z {user}: no such user"));
        }
        Ok(((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// Where reports go: the report directory, or once it fails, a temporary directory.
pub struct Target {
    dir: PathBuf,
    moved: Option<(PathBuf, String)>,
}

impl Target {
    pub fn new(dir: PathBuf) -> Target {
        Target { dir, moved: None }
    }

    /// Writes with `f` into the report directory; when that fails, into a fresh temporary
    /// directory (said on stderr), which later rounds then use.
    pub fn write(&mut self, f: impl Fn(&Path) -> io::Result<()>) -> io::Result<()> {
        if let Some((d, _)) = &self.moved {
            return f(d);
        }
        let Err(e) = f(&self.dir) else {
            return Ok(());
        };
        let fallback = fallback_dir()?;
        eprintln!(
            "flowaudit: cannot write reports to {}: {e}; writing them to {} instead",
            self.dir.display(),
            fallback.display()
        );
        f(&fallback)?;
        self.moved = Some((fallback, e.to_string()));
        Ok(())
    }

    /// The directory the reports went to instead, and why, if they moved.
    pub fn moved(&self) -> Option<(PathBuf, String)> {
        self.moved.clone()
    }
}
