//! Labelled images from any source (CIFAR-sized ones in memory, full-size ones streamed from
//! an ImageNet-layout folder), and the seeded order they are visited in.

use serde::{Deserialize, Serialize};

use super::cifar::PIXELS;
use super::image_set::ImageSet;
use super::rng::Rng;
use super::synthetic::{self, Shapes};
use crate::io::Normalization;

/// A set of labelled RGB images.
#[derive(Debug, Clone, PartialEq)]
pub enum Dataset {
    /// The embedded generated shapes, rendered on demand.
    Shapes(Shapes),
    /// 32x32 images in memory (CIFAR batches, an image folder, a dropped dataset).
    Images(ImageSet),
    /// Full-size images decoded from disk as they are needed (natively).
    #[cfg(not(target_family = "wasm"))]
    Files(super::imagenet::FileSet),
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            Dataset::Shapes(s) => s.len,
            Dataset::Images(set) => set.len(),
            #[cfg(not(target_family = "wasm"))]
            Dataset::Files(files) => files.len(),
        }
    }

    /// Side of the square images [Dataset::batch] returns: 32, or a streamed set's view size.
    pub fn image_size(&self) -> usize {
        match self {
            #[cfg(not(target_family = "wasm"))]
            Dataset::Files(files) => files.size,
            _ => 32,
        }
    }

    /// The streamed full-size images, if this is such a set.
    #[cfg(not(target_family = "wasm"))]
    pub fn files(&self) -> Option<&super::imagenet::FileSet> {
        match self {
            Dataset::Files(files) => Some(files),
            _ => None,
        }
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class names.
    pub fn classes(&self) -> Vec<String> {
        match self {
            Dataset::Shapes(_) => synthetic::CLASSES.iter().map(|s| s.to_string()).collect(),
            Dataset::Images(set) => set.classes.clone(),
            #[cfg(not(target_family = "wasm"))]
            Dataset::Files(files) => files.classes.to_vec(),
        }
    }

    /// Label of image `index`.
    pub fn label(&self, index: usize) -> usize {
        match self {
            Dataset::Shapes(s) => s.label(index),
            Dataset::Images(set) => set.labels[index] as usize,
            #[cfg(not(target_family = "wasm"))]
            Dataset::Files(files) => files.label(index),
        }
    }

    /// Planar RGB bytes of the images at `indices`, NCHW, and their labels: square images
    /// of [Dataset::image_size] (a streamed set's center views).
    pub fn batch(&self, indices: &[usize]) -> (Vec<u8>, Vec<usize>) {
        #[cfg(not(target_family = "wasm"))]
        if let Dataset::Files(files) = self {
            return files.center_batch(indices);
        }
        let mut pixels = Vec::with_capacity(indices.len() * PIXELS);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            match self {
                Dataset::Shapes(s) => pixels.extend_from_slice(&s.render(i)),
                Dataset::Images(set) => pixels.extend_from_slice(set.image(i)),
                #[cfg(not(target_family = "wasm"))]
                Dataset::Files(_) => unreachable!("returned above"),
            }
            labels.push(self.label(i));
        }
        (pixels, labels)
    }

    /// All images as a 32x32 [ImageSet] (renders the shapes; a streamed set's center views).
    pub fn to_image_set(&self) -> ImageSet {
        match self {
            Dataset::Images(set) => set.clone(),
            _ => {
                let all: Vec<usize> = (0..self.len()).collect();
                let (pixels, labels) = match self {
                    #[cfg(not(target_family = "wasm"))]
                    Dataset::Files(files) => files.resized(32).center_batch(&all),
                    _ => self.batch(&all),
                };
                ImageSet {
                    labels: labels.into_iter().map(|l| l as u32).collect(),
                    pixels,
                    classes: self.classes(),
                }
            }
        }
    }

    /// Per-channel mean and standard deviation (on the [0, 1] scale) of the first
    /// `max_images` images: the normalisation a model trained on this data uses.
    pub fn channel_statistics(&self, max_images: usize) -> Normalization {
        let count = self.len().min(max_images).max(1);
        let (pixels, _) = self.batch(&(0..count.min(self.len())).collect::<Vec<_>>());
        let mut sum = [0f64; 3];
        let mut squares = [0f64; 3];
        let image_len = 3 * self.image_size() * self.image_size();
        for image in pixels.chunks_exact(image_len) {
            for (c, plane) in image.chunks_exact(image_len / 3).enumerate() {
                for &v in plane {
                    let v = v as f64 / 255.0;
                    sum[c] += v;
                    squares[c] += v * v;
                }
            }
        }
        let n = (pixels.len() / 3).max(1) as f64;
        let mean = sum.map(|s| s / n);
        let std = [0, 1, 2].map(|c| (squares[c] / n - mean[c] * mean[c]).max(1e-8).sqrt() as f32);
        Normalization {
            mean: mean.map(|m| m as f32),
            std,
        }
    }
}

/// Visits a dataset in a fresh seeded permutation each epoch, a batch at a time, dropping
/// the last incomplete batch (so every step has the same shape and batch statistics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampler {
    /// Seed of every epoch's permutation.
    pub seed: u64,
    /// Images in the dataset.
    pub len: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Batches already taken in this epoch.
    pub position: usize,
    #[serde(skip)]
    order: Vec<usize>,
}

impl Sampler {
    /// A sampler at the start of epoch 0.
    pub fn new(seed: u64, len: usize, batch_size: usize) -> Self {
        Self {
            seed,
            len,
            batch_size,
            epoch: 0,
            position: 0,
            order: Vec::new(),
        }
    }

    /// Full batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.len / self.batch_size.max(1)
    }

    /// The indices of the next batch.
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.position >= self.batches_per_epoch() {
            self.epoch += 1;
            self.position = 0;
            self.order.clear();
        }
        if self.order.is_empty() {
            self.order = (0..self.len).collect();
            let mut rng = Rng::new(self.seed, 0xE90C ^ self.epoch as u64);
            for i in (1..self.order.len()).rev() {
                self.order.swap(i, rng.below(i + 1));
            }
        }
        let start = self.position * self.batch_size;
        self.position += 1;
        self.order[start..start + self.batch_size].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_visits_each_image_once_per_epoch_and_resumes_exactly() {
        let mut sampler = Sampler::new(9, 10, 3);
        let mut seen: Vec<usize> = (0..3).flat_map(|_| sampler.next_batch()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "3 full batches, 1 image dropped");
        // A sampler restored from its serialised state continues identically.
        let json = serde_json::to_string(&sampler).unwrap();
        let mut restored: Sampler = serde_json::from_str(&json).unwrap();
        for _ in 0..5 {
            assert_eq!(restored.next_batch(), sampler.next_batch());
        }
        assert_eq!(sampler.epoch, 2);
    }

    #[test]
    fn channel_statistics_of_a_known_set() {
        // Two images: one all 0, one all 255 in red only; green is 51 everywhere.
        let mut pixels = vec![0u8; 2 * PIXELS];
        pixels[PIXELS..PIXELS + 1024].fill(255);
        for image in pixels.chunks_exact_mut(PIXELS) {
            image[1024..2048].fill(51);
        }
        let set = Dataset::Images(ImageSet {
            labels: vec![0, 1],
            pixels,
            classes: vec!["a".into(), "b".into()],
        });
        let n = set.channel_statistics(100);
        assert!(
            (n.mean[0] - 0.5).abs() < 1e-6 && (n.std[0] - 0.5).abs() < 1e-6,
            "{n:?}"
        );
        assert!((n.mean[1] - 0.2).abs() < 1e-6 && n.std[1] < 1e-3, "{n:?}");
    }

    #[test]
    fn shapes_batches_are_planar_and_labelled() {
        let data = Dataset::Shapes(Shapes { seed: 1, len: 20 });
        let (pixels, labels) = data.batch(&[3, 14]);
        assert_eq!(pixels.len(), 2 * PIXELS);
        assert_eq!(labels, vec![3, 4]);
        assert_eq!(
            &pixels[..PIXELS],
            &Shapes { seed: 1, len: 20 }.render(3)[..]
        );
    }
}
