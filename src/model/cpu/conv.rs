//! A folded convolution on an NHWC [Map]: im2col rows (none for a 1x1 stride-1 convolution),
//! one gemm per group against the weight stored `[kh, kw, in/groups, out]`, then bias,
//! residual and ReLU in one pass over the output; or, for a dense 3x3 with stride 1,
//! Winograd's F(2x2, 3x3) ([winograd]).

use std::sync::Arc;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;

use super::{Map, for_rows, simd, winograd};

/// Floats of im2col rows built at a time (4 MB): a batch-16 ResNet-18 stem would otherwise
/// need a 118 MB buffer; a tile this size still gives the gemm hundreds of rows.
const TILE_FLOATS: usize = 1 << 20;

/// A convolution with its BN folded, ready for [Map]s.
#[derive(Debug, Clone)]
pub(crate) struct CpuConv {
    /// `[kh, kw, in / groups, out]`: output channels contiguous, which is the layout the
    /// gemm's kernel reads the weight in (it computes the output transposed), so it skips
    /// repacking the weight when the map is small (ResNet-18's last stage at batch 1). With
    /// `winograd`, the weight transformed instead: `[16, in, out]`.
    weight: Arc<[f32]>,
    bias: Option<Arc<[f32]>>,
    out_channels: usize,
    in_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Top, left, bottom, right.
    padding: [usize; 4],
    groups: usize,
    /// Whether this runs Winograd's F(2x2, 3x3) rather than im2col.
    winograd: bool,
}

impl CpuConv {
    /// `conv`'s weights read back, or `None` for padding other than explicit. A dense 3x3
    /// convolution with stride and dilation 1 and at least [winograd::MIN_CHANNELS] in and out
    /// runs Winograd's F(2x2, 3x3): natively, one thread, it took each of ResNet-18's 3x3
    /// layers at batch 1 from 1.1-1.6 ms to 0.65-1.16 (the last stage's 16 tiles included;
    /// README, **Native**).
    pub fn new(conv: &Conv2d) -> Option<Self> {
        Self::with_winograd(conv, winograd::MIN_CHANNELS)
    }

    /// [Self::new], with Winograd from `min_channels` in and out (where the geometry fits).
    fn with_winograd(conv: &Conv2d, min_channels: usize) -> Option<Self> {
        let padding = match conv.padding {
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Same => return None,
        };
        let [out_channels, in_per_group, kh, kw] = conv.weight.dims();
        let weight = conv.weight.val().permute([2, 3, 1, 0]).into_data();
        let weight = weight.try_into_vec::<f32>().ok()?;
        let bias = conv.bias.as_ref().map(|b| b.val().into_data());
        let winograd = [kh, kw] == [3, 3]
            && conv.stride == [1, 1]
            && conv.dilation == [1, 1]
            && conv.groups == 1
            && in_per_group.min(out_channels) >= min_channels;
        let in_channels = in_per_group * conv.groups;
        Some(Self {
            weight: match winograd {
                true => winograd::transform_weight(&weight, in_channels, out_channels),
                false => weight.into(),
            },
            bias: match bias {
                Some(b) => Some(b.try_into_vec::<f32>().ok()?.into()),
                None => None,
            },
            out_channels,
            in_channels,
            kernel: [kh, kw],
            stride: conv.stride,
            dilation: conv.dilation,
            padding,
            groups: conv.groups,
            winograd,
        })
    }

    /// Output height and width for an input of `height` x `width`, `None` if the kernel does
    /// not fit.
    fn output_size(&self, height: usize, width: usize) -> Option<(usize, usize)> {
        let [top, left, bottom, right] = self.padding;
        let span = |k: usize, d: usize| (k - 1) * d + 1;
        let oh = (height + top + bottom).checked_sub(span(self.kernel[0], self.dilation[0]))?;
        let ow = (width + left + right).checked_sub(span(self.kernel[1], self.dilation[1]))?;
        Some((oh / self.stride[0] + 1, ow / self.stride[1] + 1))
    }

    /// Whether the input rows are the im2col rows already.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0; 4]
    }

    /// `relu?(conv(x) + bias + residual)`, or `None` if `x` does not fit this convolution
    /// (the caller falls back to burn's, which reports the problem).
    ///
    /// # Shapes
    /// - `x`: `[batch, height, width, in]`
    /// - `residual`, output: `[batch, out_height, out_width, out]`
    pub fn forward(&self, x: &Map, residual: Option<&Map>, relu: bool) -> Option<Map> {
        if x.channels != self.in_channels {
            return None;
        }
        let (height, width) = self.output_size(x.height, x.width)?;
        let positions = x.batch * height * width;
        let out_channels = self.out_channels;
        let fits = |r: &Map| {
            (r.batch, r.height, r.width, r.channels) == (x.batch, height, width, out_channels)
        };
        if residual.is_some_and(|r| !fits(r)) {
            return None;
        }
        if self.winograd {
            let shape = winograd::Shape {
                padding: [self.padding[0], self.padding[1]],
                out_height: height,
                out_width: width,
                out_channels,
            };
            let data = winograd::forward(
                &self.weight,
                x,
                &shape,
                self.bias.as_deref(),
                residual,
                relu,
            );
            return Some(Map {
                data,
                batch: x.batch,
                height,
                width,
                channels: out_channels,
            });
        }
        let [kh, kw] = self.kernel;
        let in_per_group = self.in_channels / self.groups;
        let out_per_group = out_channels / self.groups;
        let depth = kh * kw * in_per_group;
        let mut out = vec![0.0f32; positions * out_channels];
        // At least one row per tile, also for an empty batch (`step_by(0)` would panic).
        let rows_per_tile = match self.is_pointwise() {
            true => positions,
            false => (TILE_FLOATS / (depth * self.groups)).min(positions),
        }
        .max(1);
        let mut col = match self.is_pointwise() {
            true => Vec::new(),
            false => vec![0.0f32; rows_per_tile * depth * self.groups],
        };
        for first in (0..positions).step_by(rows_per_tile) {
            let rows = rows_per_tile.min(positions - first);
            let lhs: &[f32] = match self.is_pointwise() {
                true => &x.data[first * self.in_channels..],
                false => {
                    let col = &mut col[..rows * depth * self.groups];
                    self.im2col(x, (height, width), first, col);
                    col
                }
            };
            let dst = &mut out[first * out_channels..(first + rows) * out_channels];
            for g in 0..self.groups {
                // SAFETY: every index gemm touches is in bounds: lhs holds `rows` rows of
                // `groups * depth` floats (the input's channels when pointwise) and group g's
                // columns start at `g * depth`; the weight holds `depth` rows of `out`
                // floats, group g's columns at `g * out_per_group`; dst holds `rows` rows of `out` floats, group g's at `g *
                // out_per_group`.
                unsafe {
                    gemm::gemm(
                        rows,
                        out_per_group,
                        depth,
                        dst.as_mut_ptr().add(g * out_per_group),
                        1,
                        out_channels as isize,
                        false,
                        lhs.as_ptr().add(g * depth),
                        1,
                        (depth * self.groups) as isize,
                        self.weight.as_ptr().add(g * out_per_group),
                        1,
                        out_channels as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism(),
                    );
                }
            }
        }
        let bias = self.bias.as_deref();
        for_rows(&mut out, out_channels, |p, row| {
            if let Some(bias) = bias {
                simd::add_assign(row, bias);
            }
            if let Some(r) = residual {
                simd::add_assign(row, &r.data[p * out_channels..(p + 1) * out_channels]);
            }
            if relu {
                simd::relu(row);
            }
        });
        Some(Map {
            data: out,
            batch: x.batch,
            height,
            width,
            channels: out_channels,
        })
    }

    /// im2col rows `first..` (as many as `col` holds) of `x`, each `groups` runs of `kh * kw`
    /// segments of `in / groups` channels, zeros where the kernel overhangs the padding.
    fn im2col(&self, x: &Map, (height, width): (usize, usize), first: usize, col: &mut [f32]) {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let [top, left, _, _] = self.padding;
        let in_per_group = self.in_channels / self.groups;
        let c = x.channels;
        for_rows(col, kh * kw * c, |r, row| {
            let p = first + r;
            let (n, oy, ox) = (p / (height * width), p / width % height, p % width);
            let mut segments = row.chunks_exact_mut(in_per_group);
            for g in 0..self.groups {
                for ky in 0..kh {
                    let iy = (oy * sh + ky * dh)
                        .checked_sub(top)
                        .filter(|&y| y < x.height);
                    for kx in 0..kw {
                        let ix = (ox * sw + kx * dw)
                            .checked_sub(left)
                            .filter(|&x_| x_ < x.width);
                        let segment = segments.next().expect("row length");
                        match (iy, ix) {
                            (Some(iy), Some(ix)) => {
                                let at =
                                    ((n * x.height + iy) * x.width + ix) * c + g * in_per_group;
                                segment.copy_from_slice(&x.data[at..at + in_per_group]);
                            }
                            _ => segment.fill(0.0),
                        }
                    }
                }
            }
        });
    }
}

/// Every thread with `cfg(parallel)` (the gemm decides how many a product is worth), else one.
fn parallelism() -> gemm::Parallelism {
    #[cfg(parallel)]
    return gemm::Parallelism::Rayon(rayon::current_num_threads());
    #[cfg(not(parallel))]
    gemm::Parallelism::None
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::activation::relu;
    use burn::tensor::{Device, Distribution, Tensor, Tolerance};

    use super::*;

    /// Against burn's convolution on flex, with and without the fused residual and ReLU, for
    /// each geometry ResNets and their successors use and the edge cases of the im2col and of
    /// Winograd's tiles (odd sizes, a map narrower than a tile, blocks that straddle images);
    /// each 3x3 stride-1 case by im2col and by Winograd.
    #[test]
    fn matches_burns_convolution() {
        let device = Device::flex();
        // in, out, kernel, stride, padding, dilation, groups, height, width
        let cases = [
            (3, 8, 7, 2, 3, 1, 1, 15, 13),    // the ImageNet stem, odd sizes
            (8, 8, 3, 1, 1, 1, 1, 9, 9),      // a basic block
            (8, 16, 3, 2, 1, 1, 1, 9, 10),    // a downsampling 3x3
            (8, 16, 1, 2, 0, 1, 1, 9, 9),     // a projection shortcut
            (16, 8, 1, 1, 0, 1, 1, 5, 6),     // a bottleneck's 1x1 (no im2col)
            (16, 16, 3, 1, 1, 1, 4, 7, 7),    // ResNeXt's grouped 3x3
            (8, 12, 1, 1, 0, 1, 2, 4, 4),     // a grouped 1x1
            (4, 6, 3, 1, 2, 2, 1, 8, 8),      // dilated
            (4, 4, 3, 1, 0, 1, 1, 3, 3),      // no padding, one output position
            (64, 8, 3, 1, 1, 1, 1, 32, 32),   // more im2col rows than one tile
            (5, 7, 3, 1, 0, 1, 1, 6, 9),      // no padding, an odd output width
            (6, 6, 3, 1, 1, 1, 1, 1, 4),      // one row: half a Winograd tile
            (3, 5, 3, 1, 2, 1, 1, 4, 5),      // more padding than Winograd's one
            (256, 256, 3, 1, 1, 1, 1, 27, 9), // Winograd blocks straddling the images
        ];
        for (i, o, k, s, p, d, g, h, w) in cases {
            let conv = Conv2dConfig::new([i, o], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_dilation([d, d])
                .with_groups(g)
                .init(&device);
            let x = Tensor::<4>::random([2, i, h, w], Distribution::Normal(0.0, 1.0), &device);
            let expected = conv.forward(x.clone());
            let residual =
                Tensor::<4>::random(expected.dims(), Distribution::Normal(0.0, 1.0), &device);
            let map = Map::from_tensor(x).unwrap();
            let residual_map = Map::from_tensor(residual.clone()).unwrap();
            for winograd in [false, true] {
                let min_channels = if winograd { 0 } else { usize::MAX };
                let cpu = CpuConv::with_winograd(&conv, min_channels).unwrap();
                if winograd && !cpu.winograd {
                    continue;
                }
                let case = format!("{i}->{o} k{k} s{s} p{p} d{d} g{g} {h}x{w} winograd {winograd}");
                let plain = cpu.forward(&map, None, false).expect(&case);
                plain
                    .into_tensor(&device)
                    .into_data()
                    .assert_approx_eq::<f32>(
                        &expected.clone().into_data(),
                        Tolerance::rel_abs(1e-5, 1e-5),
                    );
                let fused = cpu.forward(&map, Some(&residual_map), true).expect(&case);
                fused
                    .into_tensor(&device)
                    .into_data()
                    .assert_approx_eq::<f32>(
                        &relu(expected.clone() + residual.clone()).into_data(),
                        Tolerance::rel_abs(1e-5, 1e-5),
                    );
            }
        }
    }

    /// An input whose channels or size do not fit is declined, not misread.
    #[test]
    fn declines_what_does_not_fit() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([4, 4], [3, 3]).init(&device);
        let cpu = CpuConv::new(&conv).unwrap();
        let map = |c, h| Map::from_tensor(Tensor::<4>::zeros([1, c, h, h], &device)).unwrap();
        assert!(cpu.forward(&map(3, 8), None, false).is_none());
        assert!(cpu.forward(&map(4, 2), None, false).is_none());
        let wrong_residual = map(4, 8);
        assert!(
            cpu.forward(&map(4, 8), Some(&wrong_residual), true)
                .is_none()
        );
        assert!(cpu.forward(&map(4, 8), None, false).is_some());
        // An empty batch is an empty output, for a pointwise convolution too.
        let empty = Map::from_tensor(Tensor::<4>::zeros([0, 4, 8, 8], &device)).unwrap();
        let pointwise = CpuConv::new(&Conv2dConfig::new([4, 4], [1, 1]).init(&device)).unwrap();
        for conv in [&cpu, &pointwise] {
            assert!(conv.forward(&empty, None, true).unwrap().data.is_empty());
        }
    }
}
