//! "Shapes": an embedded, procedurally generated CIFAR-sized dataset (32x32 RGB, 10 classes)
//! that needs no download and is the same on every platform for a given seed.
//!
//! The class is the *shape* only. Everything else is a nuisance the network must learn to
//! ignore: the foreground colour and texture (solid, stripes, checks, dots), the background
//! colour and gradient, the pose (rotation, scale, position), clutter (thin lines and small
//! blobs of other colours) and pixel noise. Rotation never turns one class into another:
//! no class is a rotated copy of another (there is a square, but no diamond).
//!
//! Images are rendered on demand from `(seed, index)` with 2x2 supersampling, so a 50,000
//! image training set costs no memory and no storage.

use super::rng::Rng;

/// The classes, in label order.
pub const CLASSES: [&str; 10] = [
    "disk", "ring", "square", "frame", "triangle", "plus", "star", "crescent", "bar", "pair",
];

/// Images per training set and test set by default (as CIFAR-10).
pub const DEFAULT_TRAIN: usize = 50_000;
/// Test images by default.
pub const DEFAULT_TEST: usize = 10_000;

/// Seed of the embedded Shapes dataset: fixed, so the data is the same whatever a run's
/// seed, on every machine, natively and in the browser.
pub const SHAPES_SEED: u64 = 2015;

/// Side of the square images.
pub const SIZE: usize = 32;

/// A deterministic generator of labelled images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shapes {
    /// Seed of the whole set; the test set uses a different one than the training set.
    pub seed: u64,
    /// Number of images.
    pub len: usize,
}

/// A colour in [0, 1]^3 from hue, saturation, value.
fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = (h.fract() + 1.0).fract() * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

/// Whether the point (u, v), in the shape's own frame (unit scale), is inside `class`.
fn inside(class: usize, u: f32, v: f32) -> bool {
    let r = (u * u + v * v).sqrt();
    match class {
        0 => r < 0.8,                          // disk
        1 => (0.5..0.9).contains(&r),          // ring
        2 => u.abs() < 0.72 && v.abs() < 0.72, // square
        3 => {
            let m = u.abs().max(v.abs());
            (0.5..0.85).contains(&m) // frame
        }
        4 => v > -0.6 && v < 0.9 - 1.5 * u.abs() * 1.15, // triangle
        5 => (u.abs() < 0.28 && v.abs() < 0.9) || (v.abs() < 0.28 && u.abs() < 0.9), // plus
        6 => {
            // Five-pointed star: radius oscillates with the angle.
            let a = v.atan2(u);
            let k = (a * 5.0 / 2.0).cos().abs();
            r < 0.38 + 0.55 * k.powf(6.0)
        }
        7 => r < 0.85 && ((u - 0.38).powi(2) + v * v).sqrt() > 0.62, // crescent
        8 => u.abs() < 0.95 && v.abs() < 0.2,                        // bar
        _ => ((u - 0.5).powi(2) + v * v).sqrt() < 0.33 || ((u + 0.5).powi(2) + v * v).sqrt() < 0.33, // pair
    }
}

/// How a foreground pixel is coloured: a mix of two colours by a texture pattern.
#[derive(Debug, Clone, Copy)]
enum Texture {
    Solid,
    Stripes { angle: f32, period: f32 },
    Checks { period: f32 },
    Dots { period: f32 },
}

impl Texture {
    fn weight(self, x: f32, y: f32) -> f32 {
        match self {
            Texture::Solid => 0.0,
            Texture::Stripes { angle, period } => {
                let t = x * angle.cos() + y * angle.sin();
                if (t / period).rem_euclid(1.0) < 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Texture::Checks { period } => {
                let a = (x / period).floor() as i64 + (y / period).floor() as i64;
                (a.rem_euclid(2)) as f32
            }
            Texture::Dots { period } => {
                let fx = (x / period).rem_euclid(1.0) - 0.5;
                let fy = (y / period).rem_euclid(1.0) - 0.5;
                if fx * fx + fy * fy < 0.09 { 1.0 } else { 0.0 }
            }
        }
    }
}

impl Shapes {
    /// The training set of `seed`.
    pub fn train(seed: u64) -> Self {
        Self {
            seed,
            len: DEFAULT_TRAIN,
        }
    }

    /// The test set of `seed` (disjoint from the training set's stream).
    pub fn test(seed: u64) -> Self {
        Self {
            seed: seed ^ 0x7E57_7E57_7E57_7E57,
            len: DEFAULT_TEST,
        }
    }

    /// The label of image `index` (classes are balanced: index modulo 10, shuffled by the
    /// loader).
    pub fn label(&self, index: usize) -> usize {
        index % CLASSES.len()
    }

    /// Renders image `index`: planar RGB bytes (CIFAR's layout: 1024 R, 1024 G, 1024 B).
    pub fn render(&self, index: usize) -> [u8; 3 * SIZE * SIZE] {
        let class = self.label(index);
        let mut rng = Rng::new(self.seed, index as u64);

        // Colours: background and foreground hues far apart, values that differ.
        let bg_hue = rng.unit();
        let fg_hue = bg_hue + rng.range(0.25, 0.75);
        let (bg_v, fg_v) = if rng.unit() < 0.5 {
            (rng.range(0.15, 0.45), rng.range(0.6, 1.0))
        } else {
            (rng.range(0.6, 0.95), rng.range(0.1, 0.45))
        };
        let bg = hsv(bg_hue, rng.range(0.1, 0.7), bg_v);
        let bg2 = hsv(
            bg_hue + rng.range(-0.1, 0.1),
            rng.range(0.1, 0.7),
            bg_v * rng.range(0.7, 1.0),
        );
        let fg = hsv(fg_hue, rng.range(0.4, 1.0), fg_v);
        let fg2 = hsv(
            fg_hue + rng.range(-0.15, 0.15),
            rng.range(0.3, 1.0),
            fg_v * rng.range(0.5, 0.9),
        );
        let gradient = rng.range(0.0, std::f32::consts::TAU);

        let texture = match rng.below(4) {
            0 => Texture::Solid,
            1 => Texture::Stripes {
                angle: rng.range(0.0, 3.2),
                period: rng.range(2.5, 6.0),
            },
            2 => Texture::Checks {
                period: rng.range(2.0, 5.0),
            },
            _ => Texture::Dots {
                period: rng.range(3.0, 6.0),
            },
        };

        // Pose: rotation, scale (half-size in pixels) and a shifted center.
        let angle = rng.range(0.0, std::f32::consts::TAU);
        let scale = rng.range(7.0, 13.0);
        let aspect = rng.range(0.85, 1.15);
        let cx = 16.0 + rng.range(-4.0, 4.0);
        let cy = 16.0 + rng.range(-4.0, 4.0);
        let (sin, cos) = angle.sin_cos();

        // Clutter: a few thin lines and small blobs, drawn under the shape.
        let lines: Vec<([f32; 4], [f32; 3])> = (0..rng.below(4))
            .map(|_| {
                let c = hsv(rng.unit(), rng.range(0.2, 0.9), rng.range(0.2, 0.9));
                (
                    [
                        rng.range(0.0, 32.0),
                        rng.range(0.0, 32.0),
                        rng.range(0.0, 3.2),
                        rng.range(0.4, 1.1),
                    ],
                    c,
                )
            })
            .collect();
        let blobs: Vec<([f32; 3], [f32; 3])> = (0..rng.below(3))
            .map(|_| {
                let c = hsv(rng.unit(), rng.range(0.2, 0.9), rng.range(0.2, 0.9));
                (
                    [
                        rng.range(0.0, 32.0),
                        rng.range(0.0, 32.0),
                        rng.range(1.0, 2.5),
                    ],
                    c,
                )
            })
            .collect();
        let noise = rng.range(0.0, 0.08);

        let mut out = [0u8; 3 * SIZE * SIZE];
        for py in 0..SIZE {
            for px in 0..SIZE {
                let mut colour = [0.0f32; 3];
                // 2x2 supersampling for anti-aliased edges.
                for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let (x, y) = (px as f32 + ox, py as f32 + oy);
                    let t =
                        ((x - 16.0) * gradient.cos() + (y - 16.0) * gradient.sin()) / 45.0 + 0.5;
                    let mut c = [0.0; 3];
                    for k in 0..3 {
                        c[k] = bg[k] * (1.0 - t) + bg2[k] * t;
                    }
                    for &([lx, ly, la, lw], lc) in &lines {
                        let d = ((x - lx) * la.sin() - (y - ly) * la.cos()).abs();
                        if d < lw {
                            c = lc;
                        }
                    }
                    for &([bx, by, br], bc) in &blobs {
                        if (x - bx).powi(2) + (y - by).powi(2) < br * br {
                            c = bc;
                        }
                    }
                    let (dx, dy) = (x - cx, y - cy);
                    let u = (dx * cos + dy * sin) / (scale * aspect);
                    let v = (-dx * sin + dy * cos) / (scale / aspect);
                    if inside(class, u, v) {
                        let w = texture.weight(x, y);
                        for k in 0..3 {
                            c[k] = fg[k] * (1.0 - w) + fg2[k] * w;
                        }
                    }
                    for k in 0..3 {
                        colour[k] += c[k] / 4.0;
                    }
                }
                for (k, value) in colour.iter().enumerate() {
                    let v = value + noise * rng.normal();
                    out[k * SIZE * SIZE + py * SIZE + px] =
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_is_deterministic_and_seeded() {
        let set = Shapes::train(7);
        assert_eq!(set.render(123), set.render(123));
        assert_ne!(set.render(123)[..], Shapes::train(8).render(123)[..]);
        assert_ne!(set.render(123)[..], Shapes::test(7).render(123)[..]);
        assert_eq!(set.label(123), 3);
    }

    #[test]
    fn every_class_draws_a_visible_shape_of_plausible_size() {
        // With the shape pixels of known colour, count how many a fixed pose covers.
        for class in 0..CLASSES.len() {
            let mut covered = 0;
            for y in 0..64 {
                for x in 0..64 {
                    let (u, v) = ((x as f32 - 32.0) / 32.0, (y as f32 - 32.0) / 32.0);
                    covered += inside(class, u, v) as usize;
                }
            }
            let fraction = covered as f32 / 4096.0;
            assert!(
                (0.08..0.6).contains(&fraction),
                "{}: {fraction}",
                CLASSES[class]
            );
        }
    }

    #[test]
    fn no_class_is_a_rotation_of_another() {
        // Rotation-invariant signature: covered area at each radius band.
        let signature = |class: usize| -> Vec<usize> {
            let mut bands = vec![0; 10];
            for y in 0..128 {
                for x in 0..128 {
                    let (u, v) = ((x as f32 - 64.0) / 64.0, (y as f32 - 64.0) / 64.0);
                    let r = (u * u + v * v).sqrt();
                    if r < 1.0 && inside(class, u, v) {
                        bands[(r * 10.0) as usize] += 1;
                    }
                }
            }
            bands
        };
        let sigs: Vec<Vec<usize>> = (0..10).map(signature).collect();
        for a in 0..10 {
            for b in a + 1..10 {
                let diff: usize = sigs[a]
                    .iter()
                    .zip(&sigs[b])
                    .map(|(x, y)| x.abs_diff(*y))
                    .sum();
                assert!(diff > 400, "{} vs {}: {diff}", CLASSES[a], CLASSES[b]);
            }
        }
    }

    #[test]
    fn images_vary_in_colour_and_pose_within_a_class() {
        let set = Shapes::train(1);
        let a = set.render(0);
        let b = set.render(10);
        let differing = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x.abs_diff(**y) > 30)
            .count();
        assert!(differing > 1000, "{differing}");
    }
}
