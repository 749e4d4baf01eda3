//! Crash-safe file replacement: a checkpoint, a config or a metrics log is either the old file
//! or the new one after a crash at any moment, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the
/// new one, never a mix: write a temporary sibling, flush it to disk, rename it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// [write_atomic] with the writing done by `write` (which may fail: the old file stays).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // Make the rename itself durable.
            File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?
            .sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is a scratch file of an atomic write: `.{name}.{pid}.tmp` from
/// [write_atomic_with], or `{name}.{pid}-{n}.tmp` from burn's Burnpack writer.
fn is_leftover(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let Some((stem, tail)) = name.strip_suffix(".tmp").and_then(|n| n.rsplit_once('.')) else {
        return false;
    };
    match tail.split_once('-') {
        Some((pid, n)) => !stem.is_empty() && digits(pid) && digits(n),
        None => stem.len() > 1 && stem.starts_with('.') && digits(tail),
    }
}

/// Removes the temporary files interrupted [write_atomic]s left in `dir` (a process killed
/// mid-write cannot remove its own); how many. Only the one process that owns `dir` (a run
/// directory) may call it: another writer's file in flight would go too.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_leftover(name) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_atomic_write_leaves_the_previous_file_intact() {
        let dir = std::env::temp_dir().join(format!("resnet-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.bpk");
        write_atomic(&path, b"the good checkpoint").unwrap();
        let failed = write_atomic_with(&path, |file| {
            file.write_all(b"half of the new")?;
            Err(std::io::Error::other("killed mid-write"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"the good checkpoint");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
        write_atomic(&path, b"the next one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"the next one");

        // What a process killed mid-write leaves behind goes; the user's files stay.
        fs::write(dir.join(".checkpoint.bpk.4242.tmp"), b"half").unwrap();
        fs::write(dir.join("model.bpk.4242-0.tmp"), b"half").unwrap();
        fs::write(dir.join(".notes.tmp"), b"someone else's").unwrap();
        fs::write(dir.join("v1.2.tmp"), b"someone else's").unwrap();
        assert_eq!(remove_leftovers(&dir).unwrap(), 2);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".notes.tmp", "checkpoint.bpk", "v1.2.tmp"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
