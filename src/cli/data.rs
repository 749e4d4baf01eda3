//! `resnet data fetch` and `resnet data samples`.

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
}

pub fn data(command: DataCommand) -> Result<(), Error> {
    match command {
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
