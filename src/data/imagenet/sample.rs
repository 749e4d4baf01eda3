//! A small generated dataset in ImageNet's layout, for tests and for trying the loader without
//! ImageNet: JPEGs of several sizes whose class is a colour and a stripe orientation, a
//! greyscale JPEG among them, real wnids for names.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, RgbImage};

use crate::data::rng::Rng;

/// The first wnids of ImageNet-1k (tench, goldfish, great white shark, tiger shark): a
/// generated folder's class names resolve to ImageNet's.
pub const SAMPLE_WNIDS: [&str; 4] = ["n01440764", "n01443537", "n01484850", "n01491361"];

/// Class colours of the generated images.
const COLOURS: [[u8; 3]; 4] = [[200, 40, 40], [40, 180, 40], [40, 60, 200], [200, 200, 40]];

/// One generated image of class `class`: its colour, stripes along one axis, noise.
fn sample_image(class: usize, width: u32, height: u32, rng: &mut Rng) -> RgbImage {
    let colour = COLOURS[class % COLOURS.len()];
    let vertical = class.is_multiple_of(2);
    let period = 6 + rng.below(6) as u32;
    let mut image = RgbImage::new(width, height);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let t = if vertical { x } else { y };
        let stripe = if (t / period).is_multiple_of(2) {
            1.0
        } else {
            0.6
        };
        for (value, base) in pixel.0.iter_mut().zip(colour) {
            let noise = rng.range(-20.0, 20.0);
            *value = (base as f32 * stripe + noise).clamp(0.0, 255.0) as u8;
        }
    }
    image
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(image)
        .expect("encoding to memory");
    out
}

/// Writes `dir/train/<wnid>/*.JPEG` (`train_per_class` each) and `dir/val/<wnid>/*.JPEG`
/// (`val_per_class` each) for the first `classes` of [SAMPLE_WNIDS], sizes between 40 and
/// 96 pixels a side; the first validation image is greyscale.
pub fn write_sample_folder(
    dir: &Path,
    classes: usize,
    train_per_class: usize,
    val_per_class: usize,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = Rng::new(seed, 0x5A3);
    for (split, per_class) in [("train", train_per_class), ("val", val_per_class)] {
        for (class, wnid) in SAMPLE_WNIDS.iter().enumerate().take(classes) {
            let folder = dir.join(split).join(wnid);
            std::fs::create_dir_all(&folder)?;
            for i in 0..per_class {
                let (w, h) = (40 + rng.below(57) as u32, 40 + rng.below(57) as u32);
                let image = sample_image(class, w, h, &mut rng);
                let name = format!("{wnid}_{split}_{i:04}.JPEG");
                let bytes = if split == "val" && class == 0 && i == 0 {
                    let grey =
                        GrayImage::from_fn(w, h, |x, y| image::Luma([image.get_pixel(x, y).0[0]]));
                    let mut out = Vec::new();
                    JpegEncoder::new_with_quality(&mut out, 90)
                        .encode_image(&grey)
                        .expect("encoding to memory");
                    out
                } else {
                    jpeg(&image)
                };
                std::fs::write(folder.join(name), bytes)?;
            }
        }
    }
    Ok(())
}
