//! Full-size image datasets in ImageNet's layout, streamed from disk: the folder layout
//! ([layout]), the training and test transforms ([transform]) and the prefetching loader
//! ([loader]). Native only: the browser trains on CIFAR-sized data held in memory.

pub mod layout;
pub mod loader;
pub mod sample;
#[cfg(test)]
mod tests;
pub mod transform;

use std::path::Path;

pub use layout::{FileList, Layout};
pub use loader::{FileSet, Skipped};
pub use transform::Augmentation;

use super::folder::DataError;

/// Side of ImageNet's training crop and center test view.
pub const IMAGENET_SIZE: usize = 224;

/// The train and val splits of an ImageNet-layout folder, `workers` decoding threads each
/// (all cores if 0), at ImageNet's 224 with RandomResizedCrop until told otherwise.
pub fn open(dir: &Path, workers: usize) -> Result<(FileSet, FileSet), DataError> {
    let layout = layout::scan(dir)?;
    if layout.val.is_empty() {
        return Err(DataError::Layout {
            path: layout.val.root.display().to_string(),
            reason: "the validation split has no images".into(),
        });
    }
    let split = |list| {
        FileSet::new(
            list,
            layout.names.clone(),
            IMAGENET_SIZE,
            Augmentation::default(),
            workers,
        )
    };
    Ok((split(layout.train.clone()), split(layout.val.clone())))
}
