//! A folded ResNet as [CpuConv]s: what [super::super::FoldedResNet] runs on flex when every
//! block is made of convolutions, shortcuts and squeeze-excitation only (ResNets, their plain
//! twins, ResNeXt, Wide ResNet, SE nets, each shortcut option, the deep stem).

use burn::nn::Linear;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;

use super::{
    CpuConv, Map, channel_means, gate_and_join, global_average, in_pool, max_pool,
    parameter_free_shortcut,
};

/// Squeeze-excitation's two 1x1 convolutions, run on the `[batch, 1, 1, channels]` means.
#[derive(Debug, Clone)]
pub(crate) struct SePlan {
    pub fc1: CpuConv,
    pub fc2: CpuConv,
}

/// One block: `relu(conv3(relu(conv2(relu(conv1(x))))) + shortcut(x))`, or without `conv3`
/// (BasicBlock), or without the shortcut (a plain block); with `se`, the last convolution's
/// output is gated before the sum.
#[derive(Debug, Clone)]
pub(crate) struct BlockPlan {
    pub conv1: CpuConv,
    pub conv2: CpuConv,
    pub conv3: Option<CpuConv>,
    pub se: Option<SePlan>,
    /// The projection shortcut; none: identity, or option A where the shape changes.
    pub downsample: Option<CpuConv>,
    pub stride: usize,
    pub residual: bool,
    pub out_channels: usize,
}

impl BlockPlan {
    /// The block's output, or `None` if a convolution does not fit `x`.
    fn forward(&self, x: &Map, removed: bool) -> Option<Map> {
        let shortcut = |relu| match &self.downsample {
            Some(projection) => projection.forward(x, None, relu),
            None => Some(parameter_free_shortcut(x, self.stride, self.out_channels)),
        };
        if removed {
            // F(x) = 0: relu(shortcut(x)); a parameter-free shortcut of a ReLU's output is
            // non-negative already.
            return shortcut(true);
        }
        let mut out = self.conv1.forward(x, None, true)?;
        let last = match &self.conv3 {
            Some(conv3) => {
                out = self.conv2.forward(&out, None, true)?;
                conv3
            }
            None => &self.conv2,
        };
        let identity =
            self.downsample.is_none() && self.stride == 1 && x.channels == self.out_channels;
        let projected;
        let join = if !self.residual {
            None
        } else if identity {
            Some(x)
        } else {
            projected = shortcut(false)?;
            Some(&projected)
        };
        match &self.se {
            None => last.forward(&out, join, true),
            Some(se) => {
                let out = last.forward(&out, None, false)?;
                let hidden = se.fc1.forward(&channel_means(&out), None, true)?;
                let gate = se.fc2.forward(&hidden, None, false)?;
                Some(gate_and_join(out, &gate, join, true))
            }
        }
    }
}

/// The whole net but its classifier.
#[derive(Debug, Clone)]
pub(crate) struct NetPlan {
    /// The deep stem's convolutions, then `conv1`.
    pub stem: Vec<CpuConv>,
    /// Whether `conv1` is followed by a ReLU (the deep stem's always are).
    pub stem_relu: bool,
    pub maxpool: Option<MaxPool2d>,
    pub blocks: Vec<BlockPlan>,
}

impl NetPlan {
    /// The logits, or `None` if a convolution does not fit `x` (the caller then runs burn's,
    /// which names the problem). `removed[i]`: block `i` deleted for a lesion study.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: &Tensor<4>, removed: &[bool], fc: &Linear) -> Option<Tensor<2>> {
        in_pool(|| self.run(x, removed, fc))
    }

    /// [Self::forward] on the calling thread.
    fn run(&self, x: &Tensor<4>, removed: &[bool], fc: &Linear) -> Option<Tensor<2>> {
        let device = x.device();
        let mut x = Map::from_tensor(x.clone())?;
        let last = self.stem.len() - 1;
        for (i, conv) in self.stem.iter().enumerate() {
            x = conv.forward(&x, None, i < last || self.stem_relu)?;
        }
        if let Some(pool) = &self.maxpool {
            x = match max_pool(pool, &x) {
                Some(pooled) => pooled,
                None => Map::from_tensor(pool.forward(x.into_tensor(&device)))?,
            };
        }
        for (block, &removed) in self.blocks.iter().zip(removed) {
            x = block.forward(&x, removed)?;
        }
        Some(fc.forward(global_average(&x, &device)))
    }
}
