//! Training and test transforms of full-size images, on the CPU, to planar RGB bytes:
//! torchvision's RandomResizedCrop + flip, the paper's scale augmentation (shorter side in
//! [256, 480], a random 224 crop, flip, AlexNet's PCA lighting), and the center crop
//! (shorter side 256, center 224). Normalisation happens on the device.

pub use crate::data::augment::Augmentation;
use crate::data::rng::Rng;
use image::imageops::{self, FilterType};
use image::{GenericImageView, RgbImage};

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
            let crop = imageops::crop_imm(image, left, top, w, h);
            let resized = imageops::resize(&*crop, size as u32, size as u32, FilterType::Triangle);
            planar(&resized, 0, 0, size, rng.next_u64() & 1 == 1)
        }
        Augmentation::Scale => {
            let (lo, hi) = (resize_for(size), (size * 15).div_ceil(7));
            let shorter = lo + rng.below(hi - lo + 1);
            let resized = resize_shorter(image, shorter);
            let left = rng.below(resized.width() as usize - size + 1);
            let top = rng.below(resized.height() as usize - size + 1);
            let mut out = planar(&resized, left, top, size, rng.next_u64() & 1 == 1);
            let alpha = [0, 1, 2].map(|_| rng.normal() * LIGHTING_STD);
            lighting(&mut out, alpha);
            out
        }
    }
}

/// The test view: shorter side [resize_for]`(size)`, then the center `size` crop.
pub fn center_view(image: &RgbImage, size: usize) -> Vec<u8> {
    let resized = resize_shorter(image, resize_for(size));
    let left = (resized.width() as usize - size) / 2;
    let top = (resized.height() as usize - size) / 2;
    planar(&resized, left, top, size, false)
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

/// Resized (bilinear, antialiased) so that the shorter side is `shorter`.
fn resize_shorter(image: &RgbImage, shorter: usize) -> RgbImage {
    let (w, h) = (image.width() as f64, image.height() as f64);
    let scale = shorter as f64 / w.min(h);
    let nw = ((w * scale).round() as u32).max(shorter as u32);
    let nh = ((h * scale).round() as u32).max(shorter as u32);
    if (nw, nh) == image.dimensions() {
        return image.clone();
    }
    imageops::resize(image, nw, nh, FilterType::Triangle)
}

/// The `size` square at (`left`, `top`) of `image` as planar RGB, mirrored if `flip`.
fn planar(
    image: &impl GenericImageView<Pixel = image::Rgb<u8>>,
    left: usize,
    top: usize,
    size: usize,
    flip: bool,
) -> Vec<u8> {
    let plane = size * size;
    let mut out = vec![0u8; 3 * plane];
    for y in 0..size {
        for x in 0..size {
            let sx = if flip { size - 1 - x } else { x };
            let p = image.get_pixel((left + sx) as u32, (top + y) as u32).0;
            for c in 0..3 {
                out[c * plane + y * size + x] = p[c];
            }
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
