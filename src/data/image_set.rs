//! Labelled 32x32 RGB images held in memory, whatever their source (CIFAR batches, an image
//! folder, images dropped on the page).

use super::cifar::PIXELS;
use super::rng::Rng;

/// Labelled 32x32 images in CIFAR's planar layout, in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSet {
    /// Class of each image.
    pub labels: Vec<u32>,
    /// `PIXELS` bytes per image, planar RGB.
    pub pixels: Vec<u8>,
    /// Class names.
    pub classes: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The planar pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    /// Appends another set with the same classes.
    pub fn extend(&mut self, other: ImageSet) {
        self.labels.extend(other.labels);
        self.pixels.extend(other.pixels);
    }

    /// Splits off a random `fraction` (by `seed`) as a held-out set: `(rest, held_out)`.
    pub fn split(self, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        let mut rng = Rng::new(seed, 0x5EED);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let held = ((self.len() as f64) * fraction).round() as usize;
        let pick = |idx: &[usize]| ImageSet {
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            pixels: idx
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            classes: self.classes.clone(),
        };
        (pick(&order[held..]), pick(&order[..held]))
    }
}
