//! What run mode does while it may still be root: the pid file, and the
//! drop to `server.user`/`server.group`.
//!
//! Order, as nginx and HAProxy do it: bind the listeners, open the logs
//! (`logging::init`), write the pid file, then drop privileges. The files
//! stay open across the drop; only opening them again (SIGUSR1) and
//! removing the pid file at exit happen as the dropped user.
//! It does not own binding or logging (`run.rs`, `logging.rs`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

/// The pid file while the process runs.
pub struct PidFile {
    path: PathBuf,
}

/// Writing the pid file failed.
#[derive(Debug)]
pub struct PidFileError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for PidFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write pid_file {}: {}",
            self.path.display(),
            self.source
        )
    }
}

impl PidFile {
    /// Writes our pid to `path` (replacing a stale file).
    pub fn write(path: &Path) -> Result<PidFile, PidFileError> {
        std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
            PidFileError {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }

    /// Removes the file at exit. After a privilege drop this needs a folder
    /// the dropped user may write to; otherwise the file stays (it names a
    /// pid that no longer runs) and an info line says why.
    pub fn remove(self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::info!(
                "pid_file {} left in place: {e} (after dropping privileges its folder must be writable by server.user to remove it)",
                self.path.display()
            ),
        }
    }
}

/// Why the drop to `server.user`/`server.group` failed.
#[derive(Debug)]
pub enum PrivilegeError {
    UnknownUser(String),
    UnknownGroup(String),
    Lookup {
        key: &'static str,
        name: String,
        source: nix::Error,
    },
    SetGroups(nix::Error),
    SetGid(Gid, nix::Error),
    SetUid(Uid, nix::Error),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::UnknownUser(name) => write!(f, "server.user {name:?}: no such user"),
            PrivilegeError::UnknownGroup(name) => {
                write!(f, "server.group {name:?}: no such group")
            }
            PrivilegeError::Lookup { key, name, source } => write!(f, "{key} {name:?}: {source}"),
            PrivilegeError::SetGroups(e) => write!(f, "setgroups: {e}"),
            PrivilegeError::SetGid(gid, e) => write!(f, "setgid({gid}): {e}"),
            PrivilegeError::SetUid(uid, e) => write!(f, "setuid({uid}): {e}"),
        }
    }
}

/// setgroups/setgid/setuid to the configured user and group, when root.
pub fn drop_privileges(user: Option<&str>, group: Option<&str>) -> Result<(), PrivilegeError> {
    use nix::unistd::{setgid, setgroups, setuid, Group, User};
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        log::warn!(
            "server.user/server.group set but not started as root; keeping the current user"
        );
        return Ok(());
    }
    let u = match user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|source| PrivilegeError::Lookup {
                    key: "server.user",
                    name: name.to_string(),
                    source,
                })?
                .ok_or_else(|| PrivilegeError::UnknownUser(name.to_string()))?,
        ),
        None => None,
    };
    let gid = match group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(|source| PrivilegeError::Lookup {
                    key: "server.group",
                    name: name.to_string(),
                    source,
                })?
                .ok_or_else(|| PrivilegeError::UnknownGroup(name.to_string()))?
                .gid,
        ),
        None => u.as_ref().map(|u| u.gid),
    };
    if let Some(gid) = gid {
        setgroups(&[gid]).map_err(PrivilegeError::SetGroups)?;
        setgid(gid).map_err(|e| PrivilegeError::SetGid(gid, e))?;
    }
    if let Some(u) = &u {
        setuid(u.uid).map_err(|e| PrivilegeError::SetUid(u.uid, e))?;
    }
    log::info!(
        "dropped privileges to user {:?} group {:?}",
        user.unwrap_or("-"),
        group.unwrap_or("-")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_file_holds_our_pid_and_goes_away() {
        let dir = std::env::temp_dir().join(format!("nvelox-pid-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pid");
        std::fs::write(&path, "stale\n").unwrap();
        let p = PidFile::write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        p.remove();
        assert!(!path.exists());
        let err = PidFile::write(&dir.join("no/such/dir/p.pid"))
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("cannot write pid_file "),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn privilege_errors_name_the_key_and_the_value() {
        assert_eq!(
            PrivilegeError::UnknownUser("nosuch".into()).to_string(),
            "server.user \"nosuch\": no such user"
        );
        assert_eq!(
            PrivilegeError::UnknownGroup("g".into()).to_string(),
            "server.group \"g\": no such group"
        );
    }
}
