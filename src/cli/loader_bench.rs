//! `resnet data bench`: how fast the streaming loader feeds a training step, per core.

use std::time::Instant;

use crate::Error;
use crate::data::augment::Augmentation;
use crate::data::dataset::Sampler;
use crate::data::imagenet::transform::train_view;
use crate::data::rng::Rng;
use crate::data::spec::DataSpec;

/// Times the loader on `data` (an ImageNet-layout folder) and prints one JSON line.
pub fn run(
    data: &str,
    workers: usize,
    batch: usize,
    batches: usize,
    size: usize,
    augmentation: Augmentation,
) -> Result<(), Error> {
    let spec = DataSpec::parse(data).map_err(Error::Other)?;
    if !matches!(spec, DataSpec::ImageNet { .. }) {
        return Err(Error::Other(
            "the loader streams imagenet:DIR data; other data is held in memory".into(),
        ));
    }
    if batch == 0 || batches == 0 || !(8..=1024).contains(&size) {
        return Err(Error::Other(
            "--batch and --batches at least 1, --size between 8 and 1024".into(),
        ));
    }
    let open = |workers| -> Result<_, Error> {
        let loaded = crate::data::folder::load_with(&spec, workers)
            .map_err(|e| Error::Other(e.to_string()))?
            .with_views(size, augmentation);
        Ok(loaded.train.files().expect("a streamed set").clone())
    };
    let files = open(workers)?;
    let batch = batch.min(files.len());
    // One thread, split: decoding alone, then the transform alone on the decoded images.
    let sample: Vec<usize> = (0..files.len())
        .step_by((files.len() / batch).max(1))
        .take(batch)
        .collect();
    let start = Instant::now();
    let images: Vec<_> = sample
        .iter()
        .filter_map(|&i| files.decode(i).ok())
        .collect();
    let decode_s = start.elapsed().as_secs_f64();
    let mut rng = Rng::new(0, 1);
    let start = Instant::now();
    for image in &images {
        std::hint::black_box(train_view(image, size, augmentation, &mut rng));
    }
    let transform_s = start.elapsed().as_secs_f64();
    let pixels: f64 = images.iter().map(|i| (i.width() * i.height()) as f64).sum();
    // The loader as training uses it: prefetching batches on `workers` threads.
    let timed = |files: &crate::data::imagenet::FileSet| {
        let mut sampler = Sampler::new(0, files.len(), batch);
        files.next_batch(&mut sampler, 0, true);
        let start = Instant::now();
        for _ in 0..batches {
            files.next_batch(&mut sampler, 0, true);
        }
        (batches * batch) as f64 / start.elapsed().as_secs_f64()
    };
    let one = timed(&open(1)?);
    let all = timed(&files);
    let n = images.len().max(1) as f64;
    let line = serde_json::json!({
        "images": files.len(),
        "size": size,
        "augmentation": augmentation,
        "meanMegapixels": pixels / n / 1e6,
        "decodeMsPerImage": decode_s * 1e3 / n,
        "transformMsPerImage": transform_s * 1e3 / n,
        "imagesPerSecondOneThread": one,
        "threads": files.workers(),
        "imagesPerSecondAllThreads": all,
    });
    println!("{line}");
    Ok(())
}
