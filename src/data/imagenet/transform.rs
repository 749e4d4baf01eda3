//! Training and test transforms of full-size images, on the CPU, to planar RGB bytes:
//! torchvision's RandomResizedCrop + flip, the paper's scale augmentation (shorter side in
//! [256, 480], a random 224 crop, flip, AlexNet's PCA lighting), and the center crop
//! (shorter side 256, center 224). Normalisation happens on the device.

pub use crate::data::augment::Augmentation;
use crate::data::rng::Rng;
use fast_image_resize as fr;
use image::RgbImage;

/// ImageNet's RGB principal components (AlexNet, section 4.1; fb.resnet.torch's values on the
/// [0, 1] scale): eigenvalues and the eigenvectors as columns.
const PCA_EIGVAL: [f32; 3] = [0.2175, 0.0188, 0.0045];
const PCA_EIGVEC: [[f32; 3]; 3] = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
];
/// Standard deviation of the lighting noise's coefficients (AlexNet: 0.1).
pub const LIGHTING_STD: f32 = 0.1;

/// Shorter side an image is resized to before its center `size` crop: 256 for 224.
pub fn resize_for(size: usize) -> usize {
    (size * 8).div_ceil(7)
}

/// A training view of `image`: `size`x`size` planar RGB bytes.
pub fn train_view(image: &RgbImage, size: usize, kind: Augmentation, rng: &mut Rng) -> Vec<u8> {
    match kind {
        Augmentation::RandomResizedCrop => {
            let (left, top, w, h) = random_resized_crop(image.width(), image.height(), rng);
            let region = [left as f64, top as f64, w as f64, h as f64];
            planar(
                &resize_region(image, region, size),
                size,
                rng.next_u64() & 1 == 1,
            )
        }
        Augmentation::Scale => {
            let (lo, hi) = (resize_for(size), (size * 15).div_ceil(7));
            let shorter = lo + rng.below(hi - lo + 1);
            let resized = ResizedFrame::new(image, shorter);
            let left = rng.below(resized.width - size + 1);
            let top = rng.below(resized.height - size + 1);
            let crop = resize_region(image, resized.region(left, top, size), size);
            let mut out = planar(&crop, size, rng.next_u64() & 1 == 1);
            let alpha = [0, 1, 2].map(|_| rng.normal() * LIGHTING_STD);
            lighting(&mut out, alpha);
            out
        }
    }
}

/// The test view: shorter side [resize_for]`(size)`, then the center `size` crop.
pub fn center_view(image: &RgbImage, size: usize) -> Vec<u8> {
    let resized = ResizedFrame::new(image, resize_for(size));
    let (left, top) = ((resized.width - size) / 2, (resized.height - size) / 2);
    let crop = resize_region(image, resized.region(left, top, size), size);
    planar(&crop, size, false)
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and ratio (3/4, 4/3):
/// ten tries at a random area and log-uniform aspect, then the center crop of the image
/// clamped to the ratio range. Returns `(left, top, width, height)`.
pub fn random_resized_crop(width: u32, height: u32, rng: &mut Rng) -> (u32, u32, u32, u32) {
    let area = (width * height) as f32;
    let (lo, hi) = ((3.0f32 / 4.0).ln(), (4.0f32 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.range(0.08, 1.0);
        let aspect = rng.range(lo, hi).exp();
        let w = (target * aspect).sqrt().round() as u32;
        let h = (target / aspect).sqrt().round() as u32;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.below((height - h + 1) as usize) as u32;
            let left = rng.below((width - w + 1) as usize) as u32;
            return (left, top, w, h);
        }
    }
    let ratio = width as f32 / height as f32;
    let (w, h) = if ratio < 3.0 / 4.0 {
        (
            width,
            ((width as f32 / (3.0 / 4.0)).round() as u32).min(height),
        )
    } else if ratio > 4.0 / 3.0 {
        (
            ((height as f32 * 4.0 / 3.0).round() as u32).min(width),
            height,
        )
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// The frame of an image resized so that its shorter side is `shorter`, without resizing it:
/// a crop of that frame is cut from the source region it covers, resized once (the same
/// pixels up to interpolation at the crop's edge, for a fraction of the work).
struct ResizedFrame {
    width: usize,
    height: usize,
    scale_x: f64,
    scale_y: f64,
}

impl ResizedFrame {
    fn new(image: &RgbImage, shorter: usize) -> Self {
        let (w, h) = (image.width() as f64, image.height() as f64);
        let scale = shorter as f64 / w.min(h);
        let width = ((w * scale).round() as usize).max(shorter);
        let height = ((h * scale).round() as usize).max(shorter);
        Self {
            width,
            height,
            scale_x: width as f64 / w,
            scale_y: height as f64 / h,
        }
    }

    /// The source region of the `size` square at (`left`, `top`) of the frame.
    fn region(&self, left: usize, top: usize, size: usize) -> [f64; 4] {
        [
            left as f64 / self.scale_x,
            top as f64 / self.scale_y,
            size as f64 / self.scale_x,
            size as f64 / self.scale_y,
        ]
    }
}

thread_local! {
    /// Each decoding thread's resizer (it keeps its scratch buffers between images).
    static RESIZER: std::cell::RefCell<fr::Resizer> = std::cell::RefCell::new(fr::Resizer::new());
}

/// `region` (`[left, top, width, height]`, fractional) of `image` resized to a `size` square
/// (bilinear, antialiased when shrinking), as interleaved RGB.
fn resize_region(image: &RgbImage, region: [f64; 4], size: usize) -> Vec<u8> {
    let mut out = fr::images::Image::new(size as u32, size as u32, fr::PixelType::U8x3);
    // A region computed through a scale can overshoot the image by a rounding error.
    let (w, h) = (image.width() as f64, image.height() as f64);
    let [left, top, width, height] = region;
    let (left, top) = (left.clamp(0.0, w - 1.0), top.clamp(0.0, h - 1.0));
    let (width, height) = (width.clamp(1.0, w - left), height.clamp(1.0, h - top));
    let alg = fr::ResizeAlg::Convolution(fr::FilterType::Bilinear);
    let cropped = fr::ResizeOptions::new()
        .resize_alg(alg)
        .crop(left, top, width, height);
    RESIZER.with_borrow_mut(|resizer| {
        if resizer.resize(image, &mut out, &cropped).is_err() {
            // Unreachable after the clamping above; the whole image is a safe answer.
            let whole = fr::ResizeOptions::new().resize_alg(alg);
            let _ = resizer.resize(image, &mut out, &whole);
        }
    });
    out.into_vec()
}

/// Interleaved RGB of a `size` square to planar, mirrored if `flip`.
fn planar(interleaved: &[u8], size: usize, flip: bool) -> Vec<u8> {
    let plane = size * size;
    let mut out = vec![0u8; 3 * plane];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (y, row) in interleaved.chunks_exact(3 * size).enumerate() {
        for (x, pixel) in row.chunks_exact(3).enumerate() {
            let at = y * size + if flip { size - 1 - x } else { x };
            r[at] = pixel[0];
            g[at] = pixel[1];
            b[at] = pixel[2];
        }
    }
    out
}

/// AlexNet's lighting noise: every pixel moves by `Σ_j eigvec[c][j] · alpha_j · eigval_j`
/// (on the [0, 1] scale), the same shift for the whole image.
pub fn lighting(planar: &mut [u8], alpha: [f32; 3]) {
    let plane = planar.len() / 3;
    for c in 0..3 {
        let shift: f32 = (0..3)
            .map(|j| PCA_EIGVEC[c][j] * alpha[j] * PCA_EIGVAL[j])
            .sum::<f32>()
            * 255.0;
        for v in &mut planar[c * plane..(c + 1) * plane] {
            *v = (*v as f32 + shift).round().clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixel (x, y) has red = x, green = y (mod 256): crops are easy to locate.
    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn random_resized_crops_follow_torchvisions_bounds() {
        let mut rng = Rng::new(3, 1);
        for _ in 0..2000 {
            let (l, t, w, h) = random_resized_crop(500, 375, &mut rng);
            assert!(l + w <= 500 && t + h <= 375, "{l} {t} {w} {h}");
            let area = (w * h) as f32 / (500.0 * 375.0);
            let aspect = w as f32 / h as f32;
            // Rounding of w and h moves the area and the aspect by a little.
            assert!((0.075..=1.0).contains(&area), "area {area}");
            assert!((0.74..=1.36).contains(&aspect), "aspect {aspect}");
        }
        // A 100:1 strip fits no try (any 8% of its area is taller than 10 at aspect ≤ 4/3):
        // the fallback is the center crop clamped to 4:3.
        assert_eq!(
            random_resized_crop(1000, 10, &mut Rng::new(0, 0)),
            (493, 0, 13, 10)
        );
    }

    #[test]
    fn the_center_view_is_256_then_the_center_224() {
        let view = center_view(&gradient(256, 300), 224);
        assert_eq!(view.len(), 3 * 224 * 224);
        // Already 256 on the shorter side: the crop starts at x = 16, y = 38.
        assert_eq!(view[0], 16);
        assert_eq!(view[224 * 224], 38);
        assert_eq!(view[2 * 224 * 224], 7);
    }

    /// Cutting the crop's source region and resizing it once gives the pixels of resizing
    /// the whole image and cropping (`image`'s resize as the independent reference), on a
    /// photo-sized image with fine waves (a one-pixel shift moves them by ~20), shrunk from
    /// 375 to 256.
    #[test]
    fn the_center_view_matches_resizing_the_whole_image_then_cropping() {
        let smooth = RgbImage::from_fn(500, 375, |x, y| {
            let (fx, fy) = (x as f32 / 500.0, y as f32 / 375.0);
            image::Rgb([
                (255.0 * fx) as u8,
                (255.0 * fy) as u8,
                (127.0 + 120.0 * (40.0 * fx + 30.0 * fy).sin()) as u8,
            ])
        });
        let ours = center_view(&smooth, 224);
        let whole =
            image::imageops::resize(&smooth, 341, 256, image::imageops::FilterType::Triangle);
        let (left, top) = ((341 - 224) / 2, (256 - 224) / 2);
        let mut worst = 0i32;
        for c in 0..3 {
            for y in 0..224 {
                for x in 0..224 {
                    let reference = whole.get_pixel(left + x, top + y).0[c] as i32;
                    let got = ours[c * 224 * 224 + (y * 224 + x) as usize] as i32;
                    worst = worst.max((reference - got).abs());
                }
            }
        }
        assert!(worst <= 2, "largest difference {worst}");
    }

    #[test]
    fn a_mirrored_view_reverses_every_row_of_every_plane() {
        // A 2x2 interleaved image: pixel k is (3k, 3k + 1, 3k + 2).
        let interleaved: Vec<u8> = (0..12).collect();
        assert_eq!(
            planar(&interleaved, 2, false),
            [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
        );
        assert_eq!(
            planar(&interleaved, 2, true),
            [3, 0, 9, 6, 4, 1, 10, 7, 5, 2, 11, 8]
        );
    }

    #[test]
    fn scale_augmentation_stays_in_the_papers_range() {
        let mut rng = Rng::new(5, 2);
        for _ in 0..20 {
            let view = train_view(&gradient(300, 256), 224, Augmentation::Scale, &mut rng);
            assert_eq!(view.len(), 3 * 224 * 224);
        }
    }

    #[test]
    fn lighting_shifts_each_channel_along_the_principal_components() {
        let mut pixels = vec![100u8; 3 * 4];
        lighting(&mut pixels, [1.0, 0.0, 0.0]);
        // First component: 0.2175 × (-0.5675, -0.5808, -0.5836) × 255 = (-31.5, -32.2, -32.4).
        assert_eq!(&pixels[..1], &[69]);
        assert_eq!(&pixels[4..5], &[68]);
        assert_eq!(&pixels[8..9], &[68]);
    }
}
