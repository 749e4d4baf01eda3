//! Folded inference on the CPU in channels-last layout, around one gemm per convolution.
//!
//! flex's convolution converts its NCHW input to NHWC, builds im2col tiles of 512 output
//! positions, runs a gemm per tile and writes the result back to NCHW: per layer, two layout
//! passes over the activations, and on a small map (ResNet-18's last stage has 49 positions
//! per image) a single tile, so a single thread for the layers with the most weights. Here an
//! activation map stays NHWC from the stem to the pool: a 1x1 convolution is a gemm straight
//! on the input, a kxk one a gemm on its im2col rows; the gemm splits its work over every
//! thread whatever the map's size; and bias, residual and ReLU are applied in one pass over
//! the output. The gemm is the `gemm` crate flex itself calls.
//!
//! Only inference of a folded net ([super::FoldedResNet]) takes this path; whatever it does not
//! cover (split attention, pre-activation, pools other than the stem's) goes through burn's ops
//! on a tensor view of the same memory.
//!
//! Unfolded nets (training, and inference with separate BN) keep NCHW, the layout burn's BN
//! and ReLU work in, and run their convolutions through [convolve]: per-image im2col and gemm
//! with a backward of its own ([nchw], [train_conv]), or Winograd's F(2x2, 3x3) for the 3x3
//! stride-1 ones where it pays ([train_winograd]).

mod batch_norm;
#[cfg(not(target_arch = "x86_64"))]
mod batch_norm_simd;
#[cfg(target_arch = "x86_64")]
mod batch_norm_wide;
mod conv;
mod geometry;
mod nchw;
mod plan;
mod rows;
mod simd;
mod train_bn;
mod train_conv;
mod train_pool;
mod train_residual;
mod train_winograd;
mod transposed;
mod wide;
mod winograd;
mod zeroed;

pub(crate) use conv::CpuConv;
pub(crate) use plan::{BlockPlan, NetPlan, SePlan};
pub(crate) use train_bn::{normalize, normalize_relu};
pub(crate) use train_conv::convolve;
pub(crate) use train_pool::max_pool2d;
pub(crate) use train_residual::add_relu;

use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{Device, Tensor, TensorData};

/// `f()` on one of rayon's threads (`cfg(parallel)`: natively and in the threaded browser
/// build). A parallel loop started from outside the pool waits for a worker to wake (~0.1 ms
/// here, more than many of a small net's layers take); one started on a worker runs there at
/// once while the others join as they wake.
pub(crate) fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(parallel)]
    return rayon::scope(|_| f());
    #[cfg(not(parallel))]
    f()
}

/// An activation map on the CPU, `[batch, height, width, channels]` row-major.
#[derive(Debug, Clone)]
pub(crate) struct Map {
    pub data: Vec<f32>,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Map {
    /// The map of an NCHW tensor (one copy unless its memory is channels last already, as
    /// [Map::into_tensor]'s is), `None` unless it holds `f32`s.
    pub fn from_tensor(x: Tensor<4>) -> Option<Self> {
        let [batch, channels, height, width] = x.dims();
        let data = x.permute([0, 2, 3, 1]).into_data();
        Some(Self {
            data: data.try_into_vec::<f32>().ok()?,
            batch,
            height,
            width,
            channels,
        })
    }

    /// A `[batch, channels, height, width]` tensor on `device` viewing this memory (no copy).
    pub fn into_tensor(self, device: &Device) -> Tensor<4> {
        let shape = [self.batch, self.height, self.width, self.channels];
        Tensor::<4>::from_data(TensorData::new(self.data, shape), device).permute([0, 3, 1, 2])
    }
}

/// `[f(0), f(1), …, f(n - 1)]`, computed over the threads (`cfg(parallel)`).
pub(crate) fn map_indices<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(parallel)]
    {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(f).collect()
    }
    #[cfg(not(parallel))]
    (0..n).map(f).collect()
}

/// `f(row index, row)` over the `len`-long rows of `out`, on every thread (`cfg(parallel)`).
pub(crate) fn for_rows(out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    #[cfg(parallel)]
    {
        use rayon::prelude::*;
        // Rows in chunks of at least ~16 K floats: below that a task costs more than it saves.
        let rows_per_task = (16_384 / len.max(1)).max(1);
        out.par_chunks_mut(len * rows_per_task)
            .enumerate()
            .for_each(|(task, chunk)| {
                for (i, row) in chunk.chunks_mut(len).enumerate() {
                    f(task * rows_per_task + i, row);
                }
            });
    }
    #[cfg(not(parallel))]
    out.chunks_mut(len)
        .enumerate()
        .for_each(|(i, row)| f(i, row));
}

/// `f(chunk index, chunk)` over the `len`-long chunks of `items`, on every thread (`cfg(parallel)`).
pub(crate) fn for_chunks<T: Send>(
    items: &mut [T],
    len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    #[cfg(parallel)]
    {
        use rayon::prelude::*;
        items
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, chunk)| f(i, chunk));
    }
    #[cfg(not(parallel))]
    items
        .chunks_mut(len)
        .enumerate()
        .for_each(|(i, chunk)| f(i, chunk));
}

/// The stem's max-pool in NHWC, or `None` for a geometry this does not cover (only explicit
/// padding, no dilation or ceil mode; the ImageNet stem's 3x3/2 pad 1 is covered).
pub(crate) fn max_pool(pool: &MaxPool2d, x: &Map) -> Option<Map> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = pool.padding else {
        return None;
    };
    if pool.dilation != [1, 1] || pool.ceil_mode {
        return None;
    }
    let [kh, kw] = pool.kernel_size;
    let [sh, sw] = pool.stride;
    let height = (x.height + top + bottom).checked_sub(kh)? / sh + 1;
    let width = (x.width + left + right).checked_sub(kw)? / sw + 1;
    let c = x.channels;
    let mut data = vec![f32::NEG_INFINITY; x.batch * height * width * c];
    for_rows(&mut data, c, |p, out| {
        let (n, oy, ox) = (p / (height * width), p / width % height, p % width);
        for ky in 0..kh {
            let Some(iy) = (oy * sh + ky).checked_sub(top).filter(|&iy| iy < x.height) else {
                continue;
            };
            for kx in 0..kw {
                let Some(ix) = (ox * sw + kx).checked_sub(left).filter(|&ix| ix < x.width) else {
                    continue;
                };
                let at = ((n * x.height + iy) * x.width + ix) * c;
                simd::max_assign(out, &x.data[at..at + c]);
            }
        }
    });
    Some(Map {
        data,
        batch: x.batch,
        height,
        width,
        channels: c,
    })
}

/// The paper's option-A shortcut in NHWC: `x[:, ::s, ::s]` with zero channels appended up to
/// `out_channels` (see `block::parameter_free_shortcut`).
pub(crate) fn parameter_free_shortcut(x: &Map, stride: usize, out_channels: usize) -> Map {
    let height = x.height.div_ceil(stride);
    let width = x.width.div_ceil(stride);
    let mut data = vec![0.0; x.batch * height * width * out_channels];
    for_rows(&mut data, out_channels, |p, out| {
        let (n, oy, ox) = (p / (height * width), p / width % height, p % width);
        let at = ((n * x.height + oy * stride) * x.width + ox * stride) * x.channels;
        out[..x.channels].copy_from_slice(&x.data[at..at + x.channels]);
    });
    Map {
        data,
        batch: x.batch,
        height,
        width,
        channels: out_channels,
    }
}

/// Each image's mean per channel, a `[batch, 1, 1, channels]` map.
pub(crate) fn channel_means(x: &Map) -> Map {
    let per_image = x.height * x.width * x.channels;
    let mut means = vec![0.0f32; x.batch * x.channels];
    for (n, mean) in means.chunks_mut(x.channels).enumerate() {
        for pixel in x.data[n * per_image..(n + 1) * per_image].chunks(x.channels) {
            mean.iter_mut().zip(pixel).for_each(|(m, v)| *m += v);
        }
        let scale = 1.0 / (x.height * x.width) as f32;
        mean.iter_mut().for_each(|m| *m *= scale);
    }
    Map {
        data: means,
        batch: x.batch,
        height: 1,
        width: 1,
        channels: x.channels,
    }
}

/// The global average pool of `x`, `[batch, channels]`.
pub(crate) fn global_average(x: &Map, device: &Device) -> Tensor<2> {
    let means = channel_means(x);
    Tensor::from_data(TensorData::new(means.data, [x.batch, x.channels]), device)
}

/// `relu?(x · gate + shortcut)` in place, with `gate` one value per image and channel (`[batch,
/// 1, 1, channels]`, squeeze-excitation's, before its sigmoid) and `shortcut` shaped as `x`.
pub(crate) fn gate_and_join(mut x: Map, gate: &Map, shortcut: Option<&Map>, relu: bool) -> Map {
    let c = x.channels;
    let per_image = x.height * x.width;
    for_rows(&mut x.data, c, |p, row| {
        let gate = &gate.data[p / per_image * c..][..c];
        row.iter_mut()
            .zip(gate)
            .for_each(|(v, g)| *v *= 1.0 / (1.0 + (-g).exp()));
        if let Some(s) = shortcut {
            row.iter_mut()
                .zip(&s.data[p * c..][..c])
                .for_each(|(v, s)| *v += s);
        }
        if relu {
            row.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    });
    x
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    fn random(shape: [usize; 4]) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex())
    }

    /// The stem's max-pool and option A's shortcut against burn's ops, at odd sizes.
    #[test]
    fn pool_and_shortcut_match_burn() {
        let device = Device::flex();
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let x = random([2, 5, 9, 7]);
        let map = Map::from_tensor(x.clone()).unwrap();
        max_pool(&pool, &map)
            .unwrap()
            .into_tensor(&device)
            .into_data()
            .assert_eq(&pool.forward(x.clone()).into_data(), true);
        let expected = crate::model::block::parameter_free_shortcut(x, 2, 8);
        parameter_free_shortcut(&map, 2, 8)
            .into_tensor(&device)
            .into_data()
            .assert_eq(&expected.into_data(), true);
        let x = random([2, 6, 3, 5]);
        let [b, c, _, _] = x.dims();
        global_average(&Map::from_tensor(x.clone()).unwrap(), &device)
            .into_data()
            .assert_approx_eq::<f32>(
                &crate::model::global_average(x).reshape([b, c]).into_data(),
                Tolerance::rel_abs(1e-6, 1e-6),
            );
    }
}
