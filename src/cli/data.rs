//! `resnet data fetch`, `resnet data samples`, `resnet data imagenet-sample` and
//! `resnet data bench` (the streaming loader's images per second).

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use crate::Error;
use crate::data::cifar::Variant;
use crate::data::fetch;
use crate::data::synthetic::{CLASSES, Shapes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Cifar10,
    Cifar100,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download an official CIFAR binary archive, check its MD5 and unpack it.
    Fetch {
        /// Which dataset.
        #[arg(value_enum)]
        which: Which,
        /// Download from here instead of the official address.
        #[arg(long)]
        url: Option<String>,
        /// Expected MD5 of the archive [default: the official one].
        #[arg(long)]
        md5: Option<String>,
        /// Directory to unpack into (e.g. www/data for the page).
        #[arg(long)]
        to: PathBuf,
    },
    /// Write test images of the embedded Shapes dataset as PNGs (the page's samples).
    Samples {
        /// Directory to write into.
        #[arg(long)]
        to: PathBuf,
        /// How many images (cycling through the classes).
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// Write a small generated dataset in ImageNet's layout (JPEGs of several sizes, real
    /// wnids), to try `--data imagenet:DIR` without ImageNet.
    ImagenetSample {
        /// Directory to write train/ and val/ into.
        #[arg(long)]
        to: PathBuf,
        /// Classes (at most 4).
        #[arg(long, default_value_t = 4)]
        classes: usize,
        /// Training images per class.
        #[arg(long, default_value_t = 16)]
        train: usize,
        /// Validation images per class.
        #[arg(long, default_value_t = 4)]
        val: usize,
    },
    /// Images per second the streaming loader decodes and augments, on one thread and on
    /// all of them, with the time split between decoding and the transform.
    Bench {
        /// The dataset: imagenet:DIR.
        #[arg(long)]
        data: String,
        /// Threads for the all-thread figure [default: one per core].
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Images per batch.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Batches timed (after one untimed).
        #[arg(long, default_value_t = 4)]
        batches: usize,
        /// Side of the training crop.
        #[arg(long, default_value_t = 224)]
        size: usize,
        /// The augmentation timed.
        #[arg(long, value_enum, default_value_t = Default::default())]
        augmentation: crate::data::augment::Augmentation,
    },
}

pub fn data(command: DataCommand) -> Result<(), Error> {
    match command {
        DataCommand::ImagenetSample {
            to,
            classes,
            train,
            val,
        } => {
            let max = crate::data::imagenet::sample::SAMPLE_WNIDS.len();
            if !(2..=max).contains(&classes) || train == 0 || val == 0 {
                return Err(Error::Other(format!(
                    "--classes between 2 and {max}, --train and --val at least 1"
                )));
            }
            crate::data::imagenet::sample::write_sample_folder(&to, classes, train, val, 0)
                .map_err(|e| Error::Other(format!("{}: {e}", to.display())))?;
            println!(
                "{} train / {} val JPEGs of {classes} classes written to {}; train with --data imagenet:{}",
                classes * train,
                classes * val,
                to.display(),
                to.display()
            );
            Ok(())
        }
        DataCommand::Bench {
            data,
            workers,
            batch,
            batches,
            size,
            augmentation,
        } => super::loader_bench::run(&data, workers, batch, batches, size, augmentation),
        DataCommand::Fetch {
            which,
            url,
            md5,
            to,
        } => {
            let variant = match which {
                Which::Cifar10 => Variant::Cifar10,
                Which::Cifar100 => Variant::Cifar100,
            };
            let archive = fetch::official(variant);
            let url = url.as_deref().unwrap_or(archive.url);
            let md5 = md5.as_deref().unwrap_or(archive.md5);
            eprintln!("downloading {url}");
            let dir = fetch::fetch(url, md5, &to).map_err(Error::Other)?;
            // Check what was unpacked reads as the dataset.
            let (train, test) = crate::data::folder::read_cifar(&dir, variant)
                .map_err(|e| Error::Other(e.to_string()))?;
            println!(
                "{} unpacked into {} ({} train / {} test images); train with --data {}:{}",
                archive.folder,
                dir.display(),
                train.len(),
                test.len(),
                if variant == Variant::Cifar10 {
                    "cifar10"
                } else {
                    "cifar100"
                },
                dir.display()
            );
            Ok(())
        }
        DataCommand::Samples { to, count } => {
            std::fs::create_dir_all(&to)
                .map_err(|e| Error::Other(format!("{}: {e}", to.display())))?;
            let test = Shapes::test(crate::data::synthetic::SHAPES_SEED);
            let mut index = Vec::new();
            for i in 0..count {
                let pixels = test.render(i);
                let image = image::RgbImage::from_fn(32, 32, |x, y| {
                    let at = (y * 32 + x) as usize;
                    image::Rgb([pixels[at], pixels[1024 + at], pixels[2048 + at]])
                });
                let label = CLASSES[test.label(i)];
                let file = format!("{i:02}-{label}.png");
                image
                    .save(to.join(&file))
                    .map_err(|e| Error::Other(format!("{file}: {e}")))?;
                index.push(serde_json::json!({ "file": file, "label": label }));
            }
            let json = serde_json::to_string_pretty(&index).expect("index serialises");
            std::fs::write(to.join("index.json"), json).map_err(|e| Error::Other(e.to_string()))?;
            println!("{count} Shapes test images written to {}", to.display());
            Ok(())
        }
    }
}
