//! A streaming loader of full-size images: files are decoded and augmented on a thread pool
//! a few batches ahead of the training step (a bounded queue), in the order of the trainer's
//! own [Sampler]; nothing but the file list is held in memory.
//!
//! Every image's augmentation is drawn from a generator seeded by (seed, epoch, batch,
//! slot), never from a shared stream, so a batch is the same whichever thread made it and
//! whether or not it was prefetched: a run resumed mid-epoch sees exactly the batches the
//! uninterrupted run would have.
//!
//! An image that cannot be read or decoded is counted and replaced by the next one of the
//! list that can (training keeps its batch shape, which GPU kernels are compiled for);
//! evaluation skips it instead, so that no image is scored twice.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use image::RgbImage;
use rayon::prelude::*;

use super::layout::FileList;
use super::transform::{Augmentation, center_view, train_view};
use crate::data::dataset::Sampler;
use crate::data::rng::Rng;

/// Batches prepared ahead of the step.
pub const PREFETCH_BATCHES: usize = 3;
/// Unreadable images in a row after which a substitute is a grey image (and the count says so).
const MAX_SUBSTITUTES: usize = 16;

/// Images skipped or replaced because they could not be decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skipped {
    /// Distinct unreadable images met so far.
    pub count: usize,
    /// The first few, with the reason (`path: why`).
    pub examples: Vec<String>,
}

/// A split of an ImageNet-layout folder, decoded on demand.
#[derive(Clone)]
pub struct FileSet {
    /// The files and their labels.
    pub list: Arc<FileList>,
    /// Class names.
    pub classes: Arc<Vec<String>>,
    /// Side of the square training (and center test) view: 224 for ImageNet.
    pub size: usize,
    /// Training augmentation.
    pub augmentation: Augmentation,
    pool: Arc<rayon::ThreadPool>,
    bad: Arc<Mutex<BTreeMap<usize, String>>>,
    prefetch: Arc<Mutex<Option<Prefetch>>>,
}

impl std::fmt::Debug for FileSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSet")
            .field("root", &self.list.root)
            .field("images", &self.list.len())
            .field("size", &self.size)
            .field("augmentation", &self.augmentation)
            .finish()
    }
}

impl PartialEq for FileSet {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
            && self.classes == other.classes
            && (self.size, self.augmentation) == (other.size, other.augmentation)
    }
}

/// A batch made by the producer thread, and the sampler state it was made at.
struct Prepared {
    epoch: usize,
    position: usize,
    indices: Vec<usize>,
    pixels: Vec<u8>,
    labels: Vec<usize>,
}

/// The producer of the batches that follow a sampler state.
struct Prefetch {
    /// Sampler state the next received batch starts at.
    next: Sampler,
    seed: u64,
    augment: bool,
    rx: Receiver<Prepared>,
}

/// Whether two samplers stand at the same place of the same order.
fn same_place(a: &Sampler, b: &Sampler) -> bool {
    (a.seed, a.len, a.batch_size, a.epoch, a.position)
        == (b.seed, b.len, b.batch_size, b.epoch, b.position)
}

/// The generator of image `slot` of the batch at (`epoch`, `position`).
fn image_rng(seed: u64, epoch: usize, position: usize, slot: usize) -> Rng {
    let mix = |a: u64, b: u64| Rng::new(a, b).next_u64();
    let stream = mix(mix(mix(0x1A6E, epoch as u64), position as u64), slot as u64);
    Rng::new(seed, stream)
}

impl FileSet {
    /// A split of `size`-pixel views decoded by `workers` threads (all cores if 0).
    pub fn new(
        list: FileList,
        classes: Vec<String>,
        size: usize,
        augmentation: Augmentation,
        workers: usize,
    ) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("resnet-decode-{i}"))
            .build()
            .expect("a thread pool");
        Self {
            list: Arc::new(list),
            classes: Arc::new(classes),
            size,
            augmentation,
            pool: Arc::new(pool),
            bad: Arc::default(),
            prefetch: Arc::default(),
        }
    }

    /// The same images (and decoding threads) seen at `size`: its own prefetch queue.
    pub fn resized(&self, size: usize) -> Self {
        Self {
            size,
            prefetch: Arc::default(),
            ..self.clone()
        }
    }

    /// The same images augmented as `augmentation` says: its own prefetch queue.
    pub fn augmented(&self, augmentation: Augmentation) -> Self {
        Self {
            augmentation,
            prefetch: Arc::default(),
            ..self.clone()
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Class of image `i`.
    pub fn label(&self, i: usize) -> usize {
        self.list.labels[i] as usize
    }

    /// Threads decoding images.
    pub fn workers(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The images that could not be decoded so far.
    pub fn skipped(&self) -> Skipped {
        let bad = self.bad.lock().expect("not poisoned");
        Skipped {
            count: bad.len(),
            examples: bad.values().take(5).cloned().collect(),
        }
    }

    /// Image `i`, decoded, or why not (and the reason recorded).
    pub fn decode(&self, i: usize) -> Result<RgbImage, String> {
        let path = self.list.path(i);
        let decoded = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| crate::data::image::decode(&bytes).map_err(|e| e.to_string()));
        decoded.map_err(|why| {
            let why = format!("{}: {why}", path.display());
            self.bad
                .lock()
                .expect("not poisoned")
                .insert(i, why.clone());
            why
        })
    }

    /// Image `i`, or the first decodable image after it, and its label.
    fn image_or_substitute(&self, i: usize) -> (RgbImage, usize) {
        for k in 0..MAX_SUBSTITUTES.min(self.len()) {
            let j = (i + k) % self.len();
            if let Ok(image) = self.decode(j) {
                return (image, self.label(j));
            }
        }
        let side = super::transform::resize_for(self.size) as u32;
        (
            RgbImage::from_pixel(side, side, image::Rgb([128; 3])),
            self.label(i),
        )
    }

    /// Center views of `indices` (unreadable images replaced), planar, and their labels.
    pub fn center_batch(&self, indices: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let views: Vec<(Vec<u8>, usize)> = self.pool.install(|| {
            indices
                .par_iter()
                .map(|&i| {
                    let (image, label) = self.image_or_substitute(i);
                    (center_view(&image, self.size), label)
                })
                .collect()
        });
        unzip(views)
    }

    /// Decoded images of `indices` with their labels, skipping (and counting) unreadable ones.
    pub fn decode_batch(&self, indices: &[usize]) -> Vec<(RgbImage, usize)> {
        self.pool.install(|| {
            indices
                .par_iter()
                .filter_map(|&i| self.decode(i).ok().map(|image| (image, self.label(i))))
                .collect()
        })
    }

    /// The augmented training views of the batch at (`epoch`, `position`).
    fn make_batch(
        &self,
        seed: u64,
        epoch: usize,
        position: usize,
        indices: &[usize],
        augment: bool,
    ) -> (Vec<u8>, Vec<usize>) {
        let views: Vec<(Vec<u8>, usize)> = self.pool.install(|| {
            indices
                .par_iter()
                .enumerate()
                .map(|(slot, &i)| {
                    let (image, label) = self.image_or_substitute(i);
                    let view = if augment {
                        let mut rng = image_rng(seed, epoch, position, slot);
                        train_view(&image, self.size, self.augmentation, &mut rng)
                    } else {
                        center_view(&image, self.size)
                    };
                    (view, label)
                })
                .collect()
        });
        unzip(views)
    }

    /// The next training batch of `sampler` (which advances), augmented when `augment`:
    /// planar `[batch, 3, size, size]` bytes and labels. Taken from the prefetch queue when
    /// it holds this batch; otherwise (the first batch, a resumed or rewound sampler) made
    /// now, and the queue restarted behind it.
    pub fn next_batch(
        &self,
        sampler: &mut Sampler,
        seed: u64,
        augment: bool,
    ) -> (Vec<usize>, Vec<u8>, Vec<usize>) {
        let mut slot = self.prefetch.lock().expect("not poisoned");
        if let Some(queue) = slot.as_mut()
            && same_place(&queue.next, sampler)
            && (queue.seed, queue.augment) == (seed, augment)
            && let Ok(batch) = queue.rx.recv()
        {
            let indices = sampler.next_batch();
            queue.next = sampler.clone();
            debug_assert_eq!(
                (batch.epoch, batch.position, &batch.indices),
                (sampler.epoch, sampler.position, &indices)
            );
            return (indices, batch.pixels, batch.labels);
        }
        let indices = sampler.next_batch();
        let (pixels, labels) =
            self.make_batch(seed, sampler.epoch, sampler.position, &indices, augment);
        *slot = Some(self.start_prefetch(sampler.clone(), seed, augment));
        (indices, pixels, labels)
    }

    /// A producer thread making the batches after `sampler`'s state; it stops when its
    /// queue is dropped.
    fn start_prefetch(&self, sampler: Sampler, seed: u64, augment: bool) -> Prefetch {
        let (tx, rx): (SyncSender<Prepared>, _) = sync_channel(PREFETCH_BATCHES);
        let producer = FileSet {
            prefetch: Arc::default(),
            ..self.clone()
        };
        let mut ahead = sampler.clone();
        std::thread::Builder::new()
            .name("resnet-prefetch".into())
            .spawn(move || {
                loop {
                    let indices = ahead.next_batch();
                    let (epoch, position) = (ahead.epoch, ahead.position);
                    let (pixels, labels) =
                        producer.make_batch(seed, epoch, position, &indices, augment);
                    let batch = Prepared {
                        epoch,
                        position,
                        indices,
                        pixels,
                        labels,
                    };
                    if tx.send(batch).is_err() {
                        return;
                    }
                }
            })
            .expect("a prefetch thread");
        Prefetch {
            next: sampler,
            seed,
            augment,
            rx,
        }
    }
}

fn unzip(views: Vec<(Vec<u8>, usize)>) -> (Vec<u8>, Vec<usize>) {
    let mut pixels = Vec::with_capacity(views.iter().map(|v| v.0.len()).sum());
    let mut labels = Vec::with_capacity(views.len());
    for (view, label) in views {
        pixels.extend_from_slice(&view);
        labels.push(label);
    }
    (pixels, labels)
}
