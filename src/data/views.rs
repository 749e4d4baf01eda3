//! Test-time views of an image (section 3.4 of the paper): a center crop, the 10-crop test
//! (four corners and the center, and their horizontal flips) and the fully-convolutional
//! multi-scale test (the whole image at several scales, with flips; scores averaged).
//!
//! Views are cut on the CPU from normalised planar pixels and handed to the device as one
//! upload per batch.

use image::RgbImage;
use image::imageops::{FilterType, resize};
use serde::{Deserialize, Serialize};

use super::image::trim_to_aspect;
use crate::io::{ModelCard, Normalization};
use crate::model::Stem;

/// Which test-time views to average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestView {
    /// One center crop.
    #[default]
    Center,
    /// Four corner crops and the center crop, and the flip of each: ten views.
    TenCrop,
    /// The whole image at several scales (and flipped), pooled fully-convolutionally.
    MultiScale,
}

impl std::str::FromStr for TestView {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "center" => Ok(Self::Center),
            "ten-crop" | "10-crop" => Ok(Self::TenCrop),
            "multi-scale" => Ok(Self::MultiScale),
            other => Err(format!(
                "unknown test view '{other}': expected center, ten-crop or multi-scale"
            )),
        }
    }
}

/// A batch of views of one size, NCHW, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewBatch {
    /// `[views, 3, height, width]`.
    pub shape: [usize; 4],
    /// The pixels, NCHW order.
    pub data: Vec<f32>,
}

/// Normalised pixels of one image, CHW.
#[derive(Debug, Clone, PartialEq)]
struct Planar {
    height: usize,
    width: usize,
    data: Vec<f32>,
}

impl Planar {
    fn from_rgb(image: &RgbImage, n: &Normalization) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let plane = width * height;
        let mut data = vec![0.0; 3 * plane];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                data[c * plane + i] = (pixel.0[c] as f32 / 255.0 - n.mean[c]) / n.std[c];
            }
        }
        Self {
            height,
            width,
            data,
        }
    }

    /// Zero padding on every side: zero is the mean pixel once normalised, which is what the
    /// paper's 4-pixel padding of mean-subtracted CIFAR images puts there.
    fn pad(&self, pad: usize) -> Self {
        let (height, width) = (self.height + 2 * pad, self.width + 2 * pad);
        let mut data = vec![0.0; 3 * height * width];
        for c in 0..3 {
            for y in 0..self.height {
                let src = (c * self.height + y) * self.width;
                let dst = (c * height + y + pad) * width + pad;
                data[dst..dst + self.width].copy_from_slice(&self.data[src..src + self.width]);
            }
        }
        Self {
            height,
            width,
            data,
        }
    }

    /// Appends the `size`x`size` crop at (`left`, `top`), mirrored if `flip`, to `out`.
    fn crop_into(&self, left: usize, top: usize, size: usize, flip: bool, out: &mut Vec<f32>) {
        for c in 0..3 {
            for y in top..top + size {
                let row = &self.data[(c * self.height + y) * self.width..][left..left + size];
                if flip {
                    out.extend(row.iter().rev());
                } else {
                    out.extend_from_slice(row);
                }
            }
        }
    }

    /// The whole image and its mirror, as a batch of two.
    fn with_flip(&self) -> ViewBatch {
        let mut data = self.data.clone();
        for row in self.data.chunks_exact(self.width) {
            data.extend(row.iter().rev());
        }
        ViewBatch {
            shape: [2, 3, self.height, self.width],
            data,
        }
    }
}

/// Resizes so that the shorter side is `shorter` (bilinear with antialiasing), keeping the
/// aspect ratio of the image [trimmed](trim_to_aspect) to at most 2:1, so that a panorama
/// cannot blow up memory at large scales.
fn resize_shorter(image: &RgbImage, shorter: usize) -> RgbImage {
    let image = trim_to_aspect(image);
    let image = image.as_ref();
    let (w0, h0) = (image.width() as usize, image.height() as usize);
    let scale = shorter as f64 / w0.min(h0) as f64;
    let nw = ((w0 as f64 * scale).round() as usize).max(shorter);
    let nh = ((h0 as f64 * scale).round() as usize).max(shorter);
    if (nw, nh) == (w0, h0) {
        return image.clone();
    }
    resize(image, nw as u32, nh as u32, FilterType::Triangle)
}

/// Side the shorter edge is resized to before cropping: 256 for a 224 ImageNet crop (the
/// paper's and torchvision's ratio), the crop itself for CIFAR nets.
pub fn resize_size(card: &ModelCard) -> usize {
    resize_side(card.config.stem(), card.input_size)
}

fn resize_side(stem: Stem, crop: usize) -> usize {
    match stem {
        Stem::ImageNet => (crop * 8).div_ceil(7),
        Stem::Cifar => crop,
    }
}

/// Shorter sides of the multi-scale test: the paper's {224, 256, 384, 480, 640} for ImageNet
/// nets (scaled to the crop size), {32, 40, 48} for CIFAR nets.
pub fn multi_scales(card: &ModelCard) -> Vec<usize> {
    scales(card.config.stem(), card.input_size)
}

fn scales(stem: Stem, crop: usize) -> Vec<usize> {
    let ratios: &[f64] = match stem {
        Stem::ImageNet => &[224.0, 256.0, 384.0, 480.0, 640.0],
        Stem::Cifar => &[224.0, 280.0, 336.0],
    };
    ratios
        .iter()
        .map(|r| (r / 224.0 * crop as f64).round() as usize)
        .collect()
}

/// The crops of a test view inside a `width`x`height` image, as `(left, top, flip)` of each
/// `crop`-sided square: the center crop; or, for the paper's 10-crop, the four corners and
/// the center, then the same five mirrored. Multi-scale views are whole images: none here.
pub fn crop_origins(
    mode: TestView,
    width: usize,
    height: usize,
    crop: usize,
) -> Vec<(usize, usize, bool)> {
    let (w, h) = (width - crop.min(width), height - crop.min(height));
    let center = (w / 2, h / 2);
    match mode {
        TestView::Center => vec![(center.0, center.1, false)],
        TestView::TenCrop => [false, true]
            .into_iter()
            .flat_map(|flip| [(0, 0), (w, 0), (0, h), (w, h), center].map(|(l, t)| (l, t, flip)))
            .collect(),
        TestView::MultiScale => Vec::new(),
    }
}

/// Padding around a 32x32 (or any `crop`-sided) image before the 10-crop: without a margin
/// the ten crops would all be the same, so pad like training does (4 pixels for 32).
pub fn ten_crop_padding(crop: usize) -> usize {
    crop / 8
}

/// The views of `image` for `mode`, as batches of equal-sized views.
pub fn views(image: &RgbImage, card: &ModelCard, mode: TestView) -> Vec<ViewBatch> {
    views_at(
        image,
        &card.normalization,
        card.config.stem(),
        card.input_size,
        mode,
    )
}

/// [views] for a net of this `stem` and `crop` size, normalised by `normalization`.
pub fn views_at(
    image: &RgbImage,
    normalization: &Normalization,
    stem: Stem,
    crop: usize,
    mode: TestView,
) -> Vec<ViewBatch> {
    match mode {
        TestView::Center | TestView::TenCrop => {
            let planar = Planar::from_rgb(
                &resize_shorter(image, resize_side(stem, crop)),
                normalization,
            );
            // Without a margin the ten crops would all be the same: pad like training does.
            let planar =
                if planar.height == crop && planar.width == crop && mode == TestView::TenCrop {
                    planar.pad(ten_crop_padding(crop))
                } else {
                    planar
                };
            let crops = crop_origins(mode, planar.width, planar.height, crop);
            let mut data = Vec::with_capacity(crops.len() * 3 * crop * crop);
            for &(left, top, flip) in &crops {
                planar.crop_into(left, top, crop, flip, &mut data);
            }
            let n = data.len() / (3 * crop * crop);
            vec![ViewBatch {
                shape: [n, 3, crop, crop],
                data,
            }]
        }
        TestView::MultiScale => scales(stem, crop)
            .into_iter()
            .map(|scale| Planar::from_rgb(&resize_shorter(image, scale), normalization).with_flip())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::parse;

    fn card(arch: &str) -> ModelCard {
        ModelCard::for_config(parse(arch).unwrap())
    }

    /// A gradient image whose pixel (x, y) has red = x, green = y: crops are easy to locate.
    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 0]))
    }

    fn red(card: &ModelCard, value: f32) -> f32 {
        (value / 255.0 - card.normalization.mean[0]) / card.normalization.std[0]
    }

    #[test]
    fn center_crop_of_an_imagenet_net_is_256_then_224() {
        let card = card("resnet18");
        let batches = views(&gradient(256, 256), &card, TestView::Center);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].shape, [1, 3, 224, 224]);
        // The crop starts at x = 16: its first red value is 16.
        assert!((batches[0].data[0] - red(&card, 16.0)).abs() < 1e-6);
    }

    #[test]
    fn ten_crop_has_the_four_corners_the_center_and_their_flips() {
        let card = card("resnet18");
        let [batch] = &views(&gradient(256, 256), &card, TestView::TenCrop)[..] else {
            panic!()
        };
        assert_eq!(batch.shape, [10, 3, 224, 224]);
        let view = 3 * 224 * 224;
        let first_red: Vec<f32> = (0..10).map(|i| batch.data[i * view]).collect();
        // Unflipped views start at x = 0, 32, 0, 32, 16; flipped ones end there.
        for (i, x) in [0.0, 32.0, 0.0, 32.0, 16.0].into_iter().enumerate() {
            assert!((first_red[i] - red(&card, x)).abs() < 1e-6, "view {i}");
            assert!(
                (first_red[5 + i] - red(&card, x + 223.0)).abs() < 1e-6,
                "flip {i}"
            );
        }
    }

    #[test]
    fn cifar_ten_crop_pads_four_pixels_like_training() {
        let card = card("resnet20");
        let [batch] = &views(&gradient(32, 32), &card, TestView::TenCrop)[..] else {
            panic!()
        };
        assert_eq!(batch.shape, [10, 3, 32, 32]);
        // The top-left corner crop of the 40x40 padded image starts with 4 zero rows, and
        // each later row with 4 zero pixels.
        assert!(batch.data[..4 * 32].iter().all(|&v| v == 0.0));
        assert_eq!(&batch.data[4 * 32..4 * 32 + 4], &[0.0; 4]);
        assert!((batch.data[4 * 32 + 4] - red(&card, 0.0)).abs() < 1e-6);
        // The center crop is the image itself.
        let center = &batch.data[4 * 3 * 32 * 32..][..32];
        assert!((center[31] - red(&card, 31.0)).abs() < 1e-6);
    }

    #[test]
    fn multi_scale_resizes_the_shorter_side_and_keeps_the_aspect() {
        let card = card("resnet50");
        let batches = views(&gradient(300, 200), &card, TestView::MultiScale);
        let shapes: Vec<[usize; 4]> = batches.iter().map(|b| b.shape).collect();
        assert_eq!(
            shapes,
            vec![
                [2, 3, 224, 336],
                [2, 3, 256, 384],
                [2, 3, 384, 576],
                [2, 3, 480, 720],
                [2, 3, 640, 960]
            ]
        );
        // The second view of each batch is the mirror of the first.
        let b = &batches[0];
        let plane = 224 * 336;
        assert_eq!(b.data[0], b.data[3 * plane + 335]);
    }

    #[test]
    fn parses_view_names() {
        assert_eq!("ten-crop".parse::<TestView>(), Ok(TestView::TenCrop));
        assert!(
            "five-crop"
                .parse::<TestView>()
                .unwrap_err()
                .contains("unknown test view")
        );
    }
}
