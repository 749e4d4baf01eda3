//! Image folders (one sub-folder per class, JPEG/PNG/…), resized to 32x32 for CIFAR-sized
//! training, the CIFAR binary directories, and ImageNet-layout folders opened for streaming
//! ([super::imagenet]), read from disk.

use std::path::{Path, PathBuf};

use super::cifar::{self, Variant};
use super::dataset::Dataset;
use super::image_set::ImageSet;
use super::spec::{DataSpec, HELD_OUT, HELD_OUT_SEED};

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The directory or a file in it cannot be read.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The layout is not the expected one.
    #[error("{path}: {reason}")]
    Layout {
        /// The directory.
        path: String,
        /// What was expected.
        reason: String,
    },
    /// A CIFAR file is malformed.
    #[error(transparent)]
    Cifar(#[from] cifar::CifarError),
    /// The spec itself cannot be used (no directory, sizes out of range).
    #[error("{0}")]
    Spec(String),
}

/// A run's data, read from disk: training and test sets and a description.
pub struct LoadedData {
    /// The training set.
    pub train: Dataset,
    /// The test set.
    pub test: Dataset,
    /// For people, run directories and model cards.
    pub description: String,
}

impl LoadedData {
    /// A streamed set's training crops and center views at `size`, augmented as
    /// `augmentation` says (CIFAR-sized data is unchanged: its size is 32).
    pub fn with_views(self, size: usize, augmentation: super::augment::Augmentation) -> Self {
        let view = |data: Dataset| match data {
            Dataset::Files(files) => Dataset::Files(files.resized(size).augmented(augmentation)),
            other => other,
        };
        Self {
            train: view(self.train),
            test: view(self.test),
            description: self.description,
        }
    }
}

/// Reads (or, for Shapes, builds) the data a [DataSpec] names; an ImageNet folder is opened
/// for streaming with a decoding thread per core.
pub fn load(spec: &DataSpec) -> Result<LoadedData, DataError> {
    load_with(spec, 0)
}

/// [load], with `workers` threads decoding a streamed dataset (all cores if 0).
pub fn load_with(spec: &DataSpec, workers: usize) -> Result<LoadedData, DataError> {
    if let Some((train, test)) = spec.shapes().map_err(DataError::Spec)? {
        return Ok(LoadedData {
            train,
            test,
            description: spec.describe(),
        });
    }
    let (kind, dir) = match spec {
        DataSpec::Cifar10 { dir } => ("cifar10", dir),
        DataSpec::Cifar100 { dir } => ("cifar100", dir),
        DataSpec::Folder { dir } => ("folder", dir),
        DataSpec::ImageNet { dir } => ("imagenet", dir),
        DataSpec::Shapes { .. } => unreachable!("built above"),
    };
    let dir = PathBuf::from(dir.as_ref().ok_or_else(|| {
        DataError::Spec(format!(
            "--data {kind} needs a directory: --data {kind}:DIR"
        ))
    })?);
    if let DataSpec::ImageNet { .. } = spec {
        let (train, test) = super::imagenet::open(&dir, workers)?;
        let description = format!(
            "ImageNet-layout {} ({} classes, {} train / {} val images)",
            dir.display(),
            train.classes.len(),
            train.len(),
            test.len()
        );
        return Ok(LoadedData {
            train: Dataset::Files(train),
            test: Dataset::Files(test),
            description,
        });
    }
    let (train, test, description) = match spec {
        DataSpec::Folder { .. } => {
            // ImageNet's own names its test split val/.
            let test_dir = ["test", "val"]
                .map(|name| dir.join(name))
                .into_iter()
                .find(|d| d.is_dir());
            let (train, test) =
                if let Some(test_dir) = test_dir.filter(|_| dir.join("train").is_dir()) {
                    let train = read_folder(&dir.join("train"))?;
                    let test = read_folder(&test_dir)?;
                    if train.classes != test.classes {
                        return Err(DataError::Layout {
                            path: dir.display().to_string(),
                            reason: format!(
                                "train/ and {}/ have different class folders",
                                test_dir.file_name().unwrap_or_default().to_string_lossy()
                            ),
                        });
                    }
                    (train, test)
                } else {
                    // No test set given: hold out a random 10%.
                    read_folder(&dir)?.split(HELD_OUT, HELD_OUT_SEED)
                };
            let description = format!(
                "folder {} ({} classes, {} train / {} test images)",
                dir.display(),
                train.classes.len(),
                train.len(),
                test.len()
            );
            (train, test, description)
        }
        _ => {
            let variant = if kind == "cifar10" {
                Variant::Cifar10
            } else {
                Variant::Cifar100
            };
            let (train, test) = read_cifar(&dir, variant)?;
            let description = format!(
                "{} ({} train / {} test images)",
                kind.to_uppercase(),
                train.len(),
                test.len()
            );
            (train, test, description)
        }
    };
    if train.is_empty() || test.is_empty() {
        return Err(DataError::Layout {
            path: dir.display().to_string(),
            reason: "the dataset has no images".into(),
        });
    }
    Ok(LoadedData {
        train: Dataset::Images(train),
        test: Dataset::Images(test),
        description,
    })
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Reads a folder of class folders; classes are the sub-folder names in sorted order.
/// Files that are not images are refused by name (a stray file is a user error to fix,
/// not something to train on silently).
pub fn read_folder(dir: &Path) -> Result<ImageSet, DataError> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    if classes.len() < 2 {
        return Err(DataError::Layout {
            path: dir.display().to_string(),
            reason: format!(
                "expected one sub-folder per class (at least 2), found {}",
                classes.len()
            ),
        });
    }
    let mut set = ImageSet {
        classes: classes
            .iter()
            .map(|c| c.file_name().unwrap().to_string_lossy().into_owned())
            .collect(),
        ..Default::default()
    };
    for (label, class_dir) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class_dir)
            .map_err(|e| unreadable(class_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataError::Layout {
                path: class_dir.display().to_string(),
                reason: "this class folder has no images".into(),
            });
        }
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| unreadable(&file, e))?;
            let image = super::image::decode(&bytes).map_err(|e| unreadable(&file, e))?;
            set.labels.push(label as u32);
            set.pixels.extend(super::image::to_cifar_size(&image));
        }
    }
    Ok(set)
}

/// The train and test sets of an extracted CIFAR archive in `dir` (or in the
/// `cifar-10-batches-bin` / `cifar-100-binary` folder inside it).
pub fn read_cifar(dir: &Path, variant: Variant) -> Result<(ImageSet, ImageSet), DataError> {
    let (inner, train_files, test_file): (&str, Vec<String>, &str) = match variant {
        Variant::Cifar10 => (
            "cifar-10-batches-bin",
            (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            "test_batch.bin",
        ),
        Variant::Cifar100 => ("cifar-100-binary", vec!["train.bin".into()], "test.bin"),
    };
    let root = if dir.join(inner).is_dir() {
        dir.join(inner)
    } else {
        dir.to_path_buf()
    };
    let read = |name: &str| -> Result<ImageSet, DataError> {
        let path = root.join(name);
        let bytes = std::fs::read(&path).map_err(|e| DataError::Layout {
            path: path.display().to_string(),
            reason: format!(
                "{e} (expected the {variant:?} binary layout: {})",
                train_files.join(", ")
            ),
        })?;
        Ok(cifar::parse(&bytes, variant, &path.display().to_string())?)
    };
    let mut train = read(&train_files[0])?;
    for name in &train_files[1..] {
        train.extend(read(name)?);
    }
    Ok((train, read(test_file)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cifar::PIXELS;
    use image::RgbImage;

    #[test]
    fn folders_become_labelled_32x32_images() {
        let dir = std::env::temp_dir().join(format!("resnet-folder-{}", std::process::id()));
        for (class, colour) in [("cats", [200, 0, 0]), ("dogs", [0, 0, 200])] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
            for i in 0..3 {
                RgbImage::from_pixel(40 + i * 10, 30, image::Rgb(colour))
                    .save(dir.join(class).join(format!("{i}.png")))
                    .unwrap();
            }
        }
        let set = read_folder(&dir).unwrap();
        assert_eq!(set.classes, vec!["cats", "dogs"]);
        assert_eq!(set.labels, vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(set.pixels.len(), 6 * PIXELS);
        // A red cat: red plane full, blue plane empty.
        assert_eq!(set.image(0)[0], 200);
        assert_eq!(set.image(0)[2048], 0);
        assert_eq!(set.image(5)[2048], 200);

        std::fs::write(dir.join("dogs").join("notes.txt"), b"not an image").unwrap();
        let err = read_folder(&dir).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("not an image"),
            "{err}"
        );
        let err = read_folder(&dir.join("cats")).unwrap_err().to_string();
        assert!(err.contains("expected one sub-folder per class"), "{err}");
    }
}
