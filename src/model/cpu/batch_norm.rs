//! Batch normalization in training on NCHW floats, optionally followed by ReLU, in four
//! passes over the activations: forward, the per-channel statistics then the output;
//! backward, the per-channel sums then the input gradient.
//!
//! burn's default (what flex runs) swaps every activation to channels-first and back twice
//! forward and twice backward, and spends a pass per element-wise operation besides: about
//! a quarter of a ResNet-20 training step. ReLU after the normalization rides along in the
//! same passes (its mask is recomputed from the input on the way back, so the output need not
//! be kept).
//!
//! Statistics are two-pass (mean, then the squared deviations from it), summed in 16 f32 lanes
//! per map and in f64 across maps; the variance is biased, as burn's and PyTorch's
//! normalization use it.

#[cfg(not(target_arch = "x86_64"))]
use super::batch_norm_simd as imp;
#[cfg(target_arch = "x86_64")]
use super::batch_norm_wide as imp;
use super::zeroed::written_parts;

/// The shape of what is normalized: `[batch, channels, positions]` (a map flattened).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dims {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl Dims {
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }

    /// Channel `c`'s map in image `i`.
    fn map<'a>(&self, x: &'a [f32], i: usize, c: usize) -> &'a [f32] {
        let at = (i * self.channels + c) * self.plane;
        &x[at..at + self.plane]
    }
}

/// Per-channel batch statistics: the mean and `1 / sqrt(biased variance + epsilon)`, and
/// the biased variance (what the running statistics take).
#[derive(Debug, Clone)]
pub(crate) struct Statistics {
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
    pub inv_std: Vec<f32>,
}

/// The batch statistics of `x`.
///
/// # Shapes
/// - `x`: `[batch, channels, plane]`, row-major
pub(crate) fn statistics(x: &[f32], d: Dims, epsilon: f64) -> Statistics {
    let per_channel = super::map_indices(d.channels, |c| {
        let mean = (0..d.batch)
            .map(|i| lanes(d.map(x, i, c), 0.0))
            .sum::<f64>()
            / d.count();
        let mean = mean as f32;
        let var = (0..d.batch)
            .map(|i| squares(d.map(x, i, c), mean))
            .sum::<f64>()
            / d.count();
        (mean, var)
    });
    let mean = per_channel.iter().map(|s| s.0).collect();
    let variance = per_channel.iter().map(|s| s.1 as f32).collect();
    let inv_std = per_channel
        .iter()
        .map(|s| (1.0 / (s.1 + epsilon).sqrt()) as f32)
        .collect();
    Statistics {
        mean,
        variance,
        inv_std,
    }
}

/// `(x - mean) * inv_std * gamma + beta`, then ReLU when `relu`.
///
/// # Shapes
/// - `x`, output: `[batch, channels, plane]`; `gamma`, `beta`: `[channels]`
pub(crate) fn forward(
    x: &[f32],
    d: Dims,
    s: &Statistics,
    gamma: &[f32],
    beta: &[f32],
    relu: bool,
) -> Vec<f32> {
    let scale: Vec<f32> = gamma.iter().zip(&s.inv_std).map(|(g, i)| g * i).collect();
    // SAFETY: each image's part is its `channels` maps, each written whole (the SIMD loop's
    // floats, then the rest).
    let (y, _) = unsafe {
        written_parts(x.len(), d.channels * d.plane, |i, image| {
            for (c, out) in image.chunks_exact_mut(d.plane).enumerate() {
                let (m, k, b) = (s.mean[c], scale[c], beta[c]);
                let input = d.map(x, i, c);
                let done = imp::normalize(out, input, [m, k, b], relu);
                let (out, input) = (&mut out[done..], &input[done..]);
                if relu {
                    out.iter_mut().zip(input).for_each(|(o, &v)| {
                        o.write(normalized(v, m, k, b).max(0.0));
                    });
                } else {
                    out.iter_mut().zip(input).for_each(|(o, &v)| {
                        o.write(normalized(v, m, k, b));
                    });
                }
            }
        })
    };
    y
}

/// The gradients of [forward] with respect to `x`, `gamma` and `beta`, given the output's.
///
/// # Shapes
/// - `x`, `dy`, `dx`: `[batch, channels, plane]`; `gamma`, `beta`, `dgamma`, `dbeta`:
///   `[channels]`
pub(crate) fn backward(
    x: &[f32],
    dy: &[f32],
    d: Dims,
    s: &Statistics,
    gamma: &[f32],
    beta: &[f32],
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma.iter().zip(&s.inv_std).map(|(g, i)| g * i).collect();
    // Per channel, Σ dy' and Σ dy'·(x - mean), dy' being dy past the ReLU's mask.
    let sums = super::map_indices(d.channels, |c| {
        let (m, k, b) = (s.mean[c], scale[c], beta[c]);
        (0..d.batch)
            .map(|i| {
                let (x, dy) = (d.map(x, i, c), d.map(dy, i, c));
                let mut acc = [[0.0f32; 16]; 2];
                let done = imp::masked_sums(x, dy, [m, k, b], relu, &mut acc);
                for (xs, gs) in x[done..].chunks(16).zip(dy[done..].chunks(16)) {
                    for (l, (&v, &g)) in xs.iter().zip(gs).enumerate() {
                        let g = if relu && normalized(v, m, k, b) <= 0.0 {
                            0.0
                        } else {
                            g
                        };
                        acc[0][l] += g;
                        acc[1][l] += g * (v - m);
                    }
                }
                let total = |a: &[f32; 16]| a.iter().map(|&v| v as f64).sum::<f64>();
                (total(&acc[0]), total(&acc[1]))
            })
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums
        .iter()
        .zip(&s.inv_std)
        .map(|(s, &i)| (s.1 * i as f64) as f32)
        .collect();
    // dx = k·(dy' - mean(dy')) - k·inv_std·mean(dy'·x̂)·(x - mean), k = γ·inv_std.
    let n = d.count();
    let centre: Vec<f32> = sums.iter().map(|s| (s.0 / n) as f32).collect();
    let slope: Vec<f32> = (0..d.channels)
        .map(|c| -(scale[c] as f64 * s.inv_std[c] as f64 * dgamma[c] as f64 / n) as f32)
        .collect();
    // SAFETY: as in [forward], each map of each image's part is written whole.
    let (dx, _) = unsafe {
        written_parts(x.len(), d.channels * d.plane, |i, image| {
            for (c, out) in image.chunks_exact_mut(d.plane).enumerate() {
                let (m, k, b) = (s.mean[c], scale[c], beta[c]);
                let (mean_dy, slope) = (centre[c], slope[c]);
                let (x, dy) = (d.map(x, i, c), d.map(dy, i, c));
                let done = imp::input_grad(out, x, dy, [m, k, b], relu, [mean_dy, slope]);
                let (out, x, dy) = (&mut out[done..], &x[done..], &dy[done..]);
                for ((o, &v), &g) in out.iter_mut().zip(x).zip(dy) {
                    let g = if relu && normalized(v, m, k, b) <= 0.0 {
                        0.0
                    } else {
                        g
                    };
                    o.write(k * (g - mean_dy) + slope * (v - m));
                }
            }
        })
    };
    (dx, dgamma, dbeta)
}

/// One normalized value; the forward and the backward's ReLU mask must round alike.
#[inline(always)]
fn normalized(v: f32, mean: f32, scale: f32, beta: f32) -> f32 {
    (v - mean) * scale + beta
}

/// Σ (v - shift) in 16 f32 lanes, then in f64.
fn lanes(v: &[f32], shift: f32) -> f64 {
    let mut acc = [0.0f32; 16];
    let done = imp::lanes(v, shift, false, &mut acc);
    for chunk in v[done..].chunks(16) {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += x - shift;
        }
    }
    acc.iter().map(|&a| a as f64).sum()
}

/// Σ (v - mean)² in 16 f32 lanes, then in f64.
fn squares(v: &[f32], mean: f32) -> f64 {
    let mut acc = [0.0f32; 16];
    let done = imp::lanes(v, mean, true, &mut acc);
    for chunk in v[done..].chunks(16) {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += (x - mean) * (x - mean);
        }
    }
    acc.iter().map(|&a| a as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed: one channel holding 1, 2, 3, 4 over two images of two positions.
    #[test]
    fn matches_a_hand_computed_case() {
        let d = Dims {
            batch: 2,
            channels: 1,
            plane: 2,
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        let s = statistics(&x, d, 0.0);
        assert_eq!(s.mean, [2.5]);
        assert_eq!(s.variance, [1.25]);
        let y = forward(&x, d, &s, &[2.0], &[1.0], false);
        let k = 2.0 / 1.25f32.sqrt();
        let expected = [-1.5 * k + 1.0, -0.5 * k + 1.0, 0.5 * k + 1.0, 1.5 * k + 1.0];
        for (a, e) in y.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{y:?} against {expected:?}");
        }
        // A gradient equal to the output's centred input: dβ = 0, dγ = Σ x̂·(x - mean) and
        // dx = γ·inv_std·(dy - x̂·mean(dy·x̂)), which for dy ∝ x̂ is zero.
        let dy = [-1.5, -0.5, 0.5, 1.5];
        let (dx, dgamma, dbeta) = backward(&x, &dy, d, &s, &[2.0], &[1.0], false);
        assert!(dbeta[0].abs() < 1e-6);
        assert!(
            (dgamma[0] - 5.0 / 1.25f32.sqrt()).abs() < 1e-5,
            "{dgamma:?}"
        );
        assert!(dx.iter().all(|v| v.abs() < 1e-5), "{dx:?}");
    }
}
