//! ImageNet's folder layout: `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG`, or a flat `val/`
//! with a labels file. Only file names are read here (no pixels): the list of 1.28 M paths is
//! all that is held in memory.
//!
//! Class index = the sorted class folders of `train/` (for ImageNet, the sorted wnids, which
//! is torchvision's and timm's order); names come from the bundled ImageNet list when every
//! folder is a known wnid, the folder names otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::folder::DataError;

/// The 1000 ImageNet-1k wnids in sorted order (timm's `imagenet_synsets.txt`): position `i`
/// is class `i` of torchvision's models and of `IMAGENET_CLASSES`.
const WNIDS: &str = include_str!("../imagenet_wnids.txt");

/// Names of a labels file for a flat `val/`, looked for in this order in the dataset folder.
pub const VAL_LABEL_FILES: [&str; 2] = ["val_labels.txt", "LOC_val_solution.csv"];

/// Extensions of the files read as images (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 6] = ["jpeg", "jpg", "png", "webp", "bmp", "gif"];

/// The image files of one split and their classes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileList {
    /// The split's folder.
    pub root: PathBuf,
    /// Paths relative to `root`.
    pub files: Vec<Box<str>>,
    /// Class of each file.
    pub labels: Vec<u32>,
}

impl FileList {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Full path of image `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        self.root.join(&*self.files[i])
    }
}

/// An ImageNet-layout dataset: its class folders, their names and both splits.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Class folder names (wnids), sorted: the class index order.
    pub wnids: Vec<String>,
    /// Human-readable class names (ImageNet's when every folder is a known wnid).
    pub names: Vec<String>,
    /// `train/`.
    pub train: FileList,
    /// `val/`.
    pub val: FileList,
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn layout_error(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Layout {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Visible entries of a directory, sorted by name.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn is_image(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        let e = e.to_string_lossy().to_ascii_lowercase();
        IMAGE_EXTENSIONS.contains(&e.as_str())
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The images of one class folder (a file that is not an image is refused by name).
fn class_files(dir: &Path, prefix: &str, out: &mut Vec<Box<str>>) -> Result<usize, DataError> {
    let before = out.len();
    for path in entries(dir)? {
        if path.is_dir() {
            continue;
        }
        if !is_image(&path) {
            return Err(layout_error(
                &path,
                "not an image file (expected .JPEG, .jpg, .png, .webp, .bmp or .gif)",
            ));
        }
        out.push(format!("{prefix}/{}", file_name(&path)).into());
    }
    Ok(out.len() - before)
}

/// Reads the layout of `dir` (its `train/` and `val/`).
pub fn scan(dir: &Path) -> Result<Layout, DataError> {
    let (train_dir, val_dir) = (dir.join("train"), dir.join("val"));
    if !train_dir.is_dir() || !val_dir.is_dir() {
        return Err(layout_error(
            dir,
            "expected ImageNet's layout: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (or a flat \
             val/ with val_labels.txt)",
        ));
    }
    let wnids: Vec<String> = entries(&train_dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| file_name(&p))
        .collect();
    if wnids.len() < 2 {
        return Err(layout_error(
            &train_dir,
            format!(
                "expected one sub-folder per class (at least 2), found {}",
                wnids.len()
            ),
        ));
    }
    let mut train = FileList {
        root: train_dir.clone(),
        ..FileList::default()
    };
    for (label, wnid) in wnids.iter().enumerate() {
        let n = class_files(&train_dir.join(wnid), wnid, &mut train.files)?;
        if n == 0 {
            return Err(layout_error(
                &train_dir.join(wnid),
                "this class folder has no images",
            ));
        }
        train.labels.extend(std::iter::repeat_n(label as u32, n));
    }
    let val = scan_val(dir, &val_dir, &wnids)?;
    Ok(Layout {
        names: class_names(&wnids),
        wnids,
        train,
        val,
    })
}

/// `val/<wnid>/…` with exactly train's classes, or a flat `val/` labelled by a file.
fn scan_val(dir: &Path, val_dir: &Path, wnids: &[String]) -> Result<FileList, DataError> {
    let index: HashMap<&str, u32> = wnids
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i as u32))
        .collect();
    let items = entries(val_dir)?;
    let mut val = FileList {
        root: val_dir.to_path_buf(),
        ..FileList::default()
    };
    if items.iter().any(|p| p.is_dir()) {
        let folders: Vec<String> = items
            .iter()
            .filter(|p| p.is_dir())
            .map(|p| file_name(p))
            .collect();
        if let Some(extra) = folders.iter().find(|f| !index.contains_key(f.as_str())) {
            return Err(layout_error(
                &val_dir.join(extra),
                "a validation class that train/ does not have",
            ));
        }
        let missing: Vec<&String> = wnids.iter().filter(|w| !folders.contains(w)).collect();
        if !missing.is_empty() {
            return Err(layout_error(
                val_dir,
                format!(
                    "val/ lacks {} of train/'s {} classes: {}{}",
                    missing.len(),
                    wnids.len(),
                    missing
                        .iter()
                        .take(5)
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if missing.len() > 5 { ", …" } else { "" }
                ),
            ));
        }
        for (label, wnid) in wnids.iter().enumerate() {
            let n = class_files(&val_dir.join(wnid), wnid, &mut val.files)?;
            val.labels.extend(std::iter::repeat_n(label as u32, n));
        }
        return Ok(val);
    }
    // A flat val/: every image needs a line in the labels file and every line an image.
    let labels_path = VAL_LABEL_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            layout_error(
                val_dir,
                format!(
                    "a flat val/ needs a labels file beside it: {} (lines `FILE WNID`) or {} \
                     (Kaggle's `ImageId,PredictionString`)",
                    VAL_LABEL_FILES[0], VAL_LABEL_FILES[1]
                ),
            )
        })?;
    let labels = read_val_labels(&labels_path, &index)?;
    let mut seen = 0usize;
    for path in items {
        if !is_image(&path) {
            return Err(layout_error(&path, "not an image file"));
        }
        let name = file_name(&path);
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let label = labels.get(stem).ok_or_else(|| {
            layout_error(
                &labels_path,
                format!("has no label for val/{name}: the labels file and val/ disagree"),
            )
        })?;
        val.files.push(name.into());
        val.labels.push(*label);
        seen += 1;
    }
    if seen != labels.len() {
        return Err(layout_error(
            &labels_path,
            format!(
                "labels {} images but val/ holds {seen}: the labels file and val/ disagree",
                labels.len()
            ),
        ));
    }
    Ok(val)
}

/// `FILE WNID` lines (or Kaggle's `ImageId,PredictionString` CSV), keyed by file stem.
fn read_val_labels(
    path: &Path,
    index: &HashMap<&str, u32>,
) -> Result<HashMap<String, u32>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, e))?;
    let mut labels = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.starts_with("ImageId")) {
            continue;
        }
        let mut fields = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty());
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(layout_error(
                path,
                format!("line {}: expected `FILE WNID`, got '{line}'", n + 1),
            ));
        };
        let label = *index.get(wnid).ok_or_else(|| {
            layout_error(
                path,
                format!(
                    "line {}: class '{wnid}' is not a folder of train/: the labels file and \
                     the folders disagree",
                    n + 1
                ),
            )
        })?;
        let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
        if labels.insert(stem.to_string(), label).is_some() {
            return Err(layout_error(
                path,
                format!("line {}: '{file}' is labelled twice", n + 1),
            ));
        }
    }
    Ok(labels)
}

/// ImageNet's names when every folder is a known wnid; the folder names otherwise.
pub fn class_names(wnids: &[String]) -> Vec<String> {
    let known: HashMap<&str, usize> = WNIDS.lines().enumerate().map(|(i, w)| (w, i)).collect();
    let names = crate::infer::imagenet_labels().unwrap_or_default();
    wnids
        .iter()
        .map(
            |w| match known.get(w.as_str()).and_then(|&i| names.get(i)) {
                Some(name) => name.clone(),
                None => w.clone(),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_wnids_are_sorted_and_name_torchvisions_classes() {
        let wnids: Vec<&str> = WNIDS.lines().collect();
        assert_eq!(wnids.len(), 1000);
        assert!(wnids.windows(2).all(|w| w[0] < w[1]));
        // Class 0 of torchvision's models is the tench (n01440764); 1 the goldfish.
        let names = class_names(&["n01440764".into(), "n01443537".into(), "mine".into()]);
        assert_eq!(names, ["tench", "goldfish", "mine"]);
    }
}
