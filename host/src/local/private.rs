//! The data dir is the owner's alone: it holds the API token, the database (with every
//! release's environment), the replicas' logs and the router's table. This process makes
//! what it creates owner-only (umask 077), makes the dir 0700, and closes up an install
//! made by an older version, saying so once.

use anyhow::{Context, Result};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The data dir, made (or fixed to be) readable by its owner only.
pub fn data_dir(dir: &Path) -> Result<()> {
    // SAFETY: umask only sets this process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))?;
    let mut fixed = 0;
    close_up(dir, &mut fixed).with_context(|| format!("making the data dir {} owner-only", dir.display()))?;
    if fixed > 0 {
        tracing::warn!(
            "{fixed} files and folders of the data dir {} were readable by others; they are now its owner's only",
            dir.display()
        );
    }
    Ok(())
}

/// Takes group and other bits off `path` and everything under it (links are left alone:
/// a mode change would follow them out of the data dir).
fn close_up(path: &Path, fixed: &mut usize) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        *fixed += 1;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            close_up(&entry?.path(), fixed)?;
        }
    }
    Ok(())
}
