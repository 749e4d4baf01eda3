//! Split attention (Zhang et al. 2020, "ResNeSt: Split-Attention Networks"): a bottleneck's 3x3
//! computes `radix` feature-map splits at once; a gate computed from their pooled sum weighs
//! the splits per channel (a softmax across the splits) and they are summed back to one map.
//!
//! In timm's layout the whole unit is the block's `conv2` (`conv2.conv`, `conv2.bn0`,
//! `conv2.fc1`, `conv2.bn1`, `conv2.fc2`); here `conv2.conv` and `conv2.bn0` are the block's own
//! `conv2` and `bn2` (so a ResNeSt block is the same code as every other bottleneck) and the
//! gate is the block's `attn` ([crate::io] maps the keys).

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::{Device, Tensor};

use super::block::{batch_norm, he_normal_fan_out};
use super::pool::global_average;

/// Channels of the gate's hidden layer: `width · radix / 4` rounded to a multiple of 8, at
/// least 32 (timm's `make_divisible(in_channels * radix * 0.25, min_value=32, divisor=8)`,
/// which also rounds up where rounding lost more than 10 %).
pub fn attention_channels(width: usize, radix: usize) -> usize {
    let v = (width * radix) as f64 / 4.0;
    let rounded = (((v + 4.0) as usize) / 8 * 8).max(32);
    if (rounded as f64) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

/// The gate of a split-attention convolution.
#[derive(Module, Debug)]
pub struct SplitAttention {
    /// 1x1 convolution (with bias, `groups` groups) of the pooled sum of the splits.
    pub fc1: Conv2d,
    /// BN after `fc1`; `None` once folded into it.
    pub bn1: Option<BatchNorm>,
    /// 1x1 convolution (with bias, `groups` groups) to one logit per split and channel.
    pub fc2: Conv2d,
    /// Splits per group (ResNeSt's R): 2 in resnest50d. With 1 the gate is a sigmoid.
    pub radix: usize,
    /// Cardinality (ResNeSt's K): the gate's convolutions and its softmax are per group.
    pub groups: usize,
}

impl SplitAttention {
    /// The gate for `width` output channels of `radix` splits in `groups` groups, He (fan-out)
    /// initialised like the rest of the net.
    pub fn new(width: usize, radix: usize, groups: usize, device: &Device) -> Self {
        let hidden = attention_channels(width, radix);
        let conv = |from, to| {
            Conv2dConfig::new([from, to], [1, 1])
                .with_groups(groups)
                .with_initializer(he_normal_fan_out())
                .init(device)
        };
        Self {
            fc1: conv(width, hidden),
            bn1: Some(batch_norm(hidden, false, device)),
            fc2: conv(hidden, width * radix),
            radix,
            groups,
        }
    }

    /// Parameters of the gate for `width` channels (two 1x1 grouped convolutions with bias and
    /// a BN); the split convolution and its BN are counted as the block's 3x3.
    pub fn params(width: usize, radix: usize, groups: usize) -> usize {
        let hidden = attention_channels(width, radix);
        width / groups * hidden
            + hidden
            + 2 * hidden
            + hidden / groups * width * radix
            + width * radix
    }

    /// Multiply-adds of the gate's two 1x1 convolutions on the pooled vector.
    pub fn macs(width: usize, radix: usize, groups: usize) -> u64 {
        let hidden = attention_channels(width, radix);
        (width / groups * hidden + hidden / groups * width * radix) as u64
    }

    /// Weighs and sums the splits of `x`, the activated output of the split convolution.
    ///
    /// # Shapes
    /// - `x`: `[batch, radix · channels, height, width]`, split-major (split `r` is channels
    ///   `r · channels ..`)
    /// - output: `[batch, channels, height, width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Only 4-d tensors and channel slices: timm's form (a [batch, radix, channels, h, w]
        // view summed over the splits) gives wrong input gradients on burn 0.22's GPU
        // backends, whose sum_dim backward reduces a length-1 axis of a channels-last
        // gradient (docs/upstream/burn-reduce-unit-axis.md).
        let [batch, rc, _, _] = x.dims();
        let (radix, groups) = (self.radix, self.groups);
        let channels = rc / radix;
        let splits: Vec<Tensor<4>> = (0..radix)
            .map(|r| x.clone().narrow(1, r * channels, channels))
            .collect();
        let pooled = global_average(
            splits
                .iter()
                .cloned()
                .reduce(|a, b| a + b)
                .expect("radix >= 1"),
        );
        let hidden = self.fc1.forward(pooled);
        let hidden = match &self.bn1 {
            Some(bn) => bn.forward(hidden),
            None => hidden,
        };
        let logits = self.fc2.forward(relu(hidden));
        // fc2's outputs are grouped: group g holds its `radix` splits one after another, so
        // a [batch, groups, radix, per_group] view puts the splits of a channel on dim 2.
        let per_group = channels / groups;
        let logits = logits.reshape([batch, groups, radix, per_group]);
        let weights = if radix > 1 {
            softmax(logits, 2)
        } else {
            sigmoid(logits)
        };
        splits
            .into_iter()
            .enumerate()
            .map(|(r, split)| {
                let weight = weights
                    .clone()
                    .narrow(2, r, 1)
                    .reshape([batch, channels, 1, 1]);
                split * weight
            })
            .reduce(|a, b| a + b)
            .expect("radix >= 1")
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{Device, Tensor, TensorData, Tolerance};

    use super::*;

    #[test]
    fn hidden_width_rounds_like_timm() {
        // resnest50d's stages (radix 2): 64, 128, 256 and 512 channels.
        for (width, radix, hidden) in [(64, 2, 32), (128, 2, 64), (256, 2, 128), (512, 2, 256)] {
            assert_eq!(attention_channels(width, radix), hidden, "{width}");
        }
        // make_divisible(36, 8) = 40 (36 + 4 = 40); 13.5 → 32 (the minimum).
        assert_eq!(attention_channels(72, 2), 40);
        assert_eq!(attention_channels(27, 2), 32);
    }

    /// A hand-computed gate: 2 splits of 1 channel, 1x2 pixels. Split 0 is [1, 3], split 1 is
    /// [5, 7]; their sum pools to 8. fc1 is 1·x + 0 on the first hidden unit (the rest 0);
    /// fc2 gives logit 0 to split 0 and 0.25·h − 1 = 1 to split 1, so the softmax weights are
    /// 1 / (1 + e) and e / (1 + e).
    #[test]
    fn weighs_the_splits_by_a_softmax_of_the_pooled_sum() {
        let device = Device::flex();
        let mut attn = SplitAttention::new(1, 2, 1, &device);
        attn.bn1 = None;
        let hidden = attention_channels(1, 2);
        let mut w1 = vec![0.0f32; hidden];
        w1[0] = 1.0;
        attn.fc1.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(w1, [hidden, 1, 1, 1]),
            &device,
        ));
        attn.fc1.bias = Some(Param::from_tensor(Tensor::zeros([hidden], &device)));
        let mut w2 = vec![0.0f32; 2 * hidden];
        w2[hidden] = 0.25;
        attn.fc2.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(w2, [2, hidden, 1, 1]),
            &device,
        ));
        attn.fc2.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.0f32, -1.0], [2]),
            &device,
        )));
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 3.0, 5.0, 7.0], [1, 2, 1, 2]),
            &device,
        );
        let e = std::f32::consts::E;
        let (a0, a1) = (1.0 / (1.0 + e), e / (1.0 + e));
        let expected =
            TensorData::new(vec![a0 * 1.0 + a1 * 5.0, a0 * 3.0 + a1 * 7.0], [1, 1, 1, 2]);
        attn.forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::default());
    }
}
