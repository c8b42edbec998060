//! Data filesystems a drill can stall: each node's data directory on an
//! ext4 filesystem of its own, in a sparse image file mounted through a
//! loop device. `fsfreeze` then stalls every write to it, as a disk that
//! stops answering would, until it is thawed. A disk is thawed and
//! unmounted when dropped; `release_under` does the same for what an
//! interrupted drill left mounted.

use std::path::{Path, PathBuf};

use crate::netns::{NetError, run};

/// Size of each disk image (sparse: only what is written takes space).
pub const DISK_IMAGE_SIZE: &str = "1G";

/// One loop-mounted data filesystem.
#[derive(Debug)]
pub struct LoopDisk {
    mount: PathBuf,
}

impl LoopDisk {
    /// Makes an ext4 image at `image` and mounts it at `mount`.
    pub fn create(image: &Path, mount: &Path) -> Result<Self, NetError> {
        let image_path = image.to_string_lossy().into_owned();
        let mount_path = mount.to_string_lossy().into_owned();
        std::fs::create_dir_all(mount).map_err(|source| NetError::Missing {
            program: format!("mkdir {mount_path}"),
            source,
        })?;
        run("truncate", &["-s", DISK_IMAGE_SIZE, &image_path])?;
        run("mkfs.ext4", &["-q", "-F", &image_path])?;
        run("mount", &["-o", "loop", &image_path, &mount_path])?;
        Ok(Self {
            mount: mount.to_path_buf(),
        })
    }

    /// Stalls every write to the filesystem.
    pub fn freeze(&self) -> Result<(), NetError> {
        run("fsfreeze", &["--freeze", &self.mount.to_string_lossy()])
    }

    /// Lets writes through again.
    pub fn thaw(&self) -> Result<(), NetError> {
        run("fsfreeze", &["--unfreeze", &self.mount.to_string_lossy()])
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        release(&self.mount);
    }
}

/// Thaws and lazily unmounts `mount` (nothing happens if it is not mounted).
fn release(mount: &Path) {
    let path = mount.to_string_lossy();
    let _ = run("fsfreeze", &["--unfreeze", &path]);
    let _ = run("umount", &["-l", &path]);
}

/// Releases every filesystem mounted under `dir`.
pub fn release_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return;
    };
    for mount in mounts.lines().filter_map(|line| line.split_whitespace().nth(1)) {
        if Path::new(mount).starts_with(dir) {
            release(Path::new(mount));
        }
    }
}
