//! The shape of a training convolution on one input size: what [super::nchw], [super::rows]
//! and [super::transposed] are given.

/// The shape of one convolution on one input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Top, left, bottom, right.
    pub padding: [usize; 4],
    pub groups: usize,
}

impl Geometry {
    /// Output height and width, `None` if the kernel does not fit the padded input.
    pub fn output_size(&self) -> Option<[usize; 2]> {
        let [top, left, bottom, right] = self.padding;
        let span = |k: usize, d: usize| (k.max(1) - 1) * d + 1;
        let oh =
            (self.height + top + bottom).checked_sub(span(self.kernel[0], self.dilation[0]))?;
        let ow = (self.width + left + right).checked_sub(span(self.kernel[1], self.dilation[1]))?;
        Some([oh / self.stride[0] + 1, ow / self.stride[1] + 1])
    }

    /// Floats of one input image and one output image.
    pub(super) fn image_lens(&self) -> [usize; 2] {
        [
            self.in_channels * self.height * self.width,
            self.out_channels * self.positions(),
        ]
    }

    /// Rows of one group's im2col matrix (the weight's row length).
    pub fn depth(&self) -> usize {
        self.in_channels / self.groups * self.kernel[0] * self.kernel[1]
    }

    pub(super) fn positions(&self) -> usize {
        let [oh, ow] = self.output_size().unwrap_or([0, 0]);
        oh * ow
    }

    /// Whether an image's `[in, h * w]` memory is its im2col matrix already.
    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0; 4]
    }

    /// Floats of one image's im2col matrix (what each thread allocates).
    pub fn cols_len(&self) -> usize {
        self.depth() * self.groups * self.positions()
    }

    /// Whether every size is positive and the channels split into the groups.
    pub fn is_valid(&self) -> bool {
        let positive = [
            self.in_channels,
            self.height,
            self.width,
            self.out_channels,
            self.groups,
        ];
        positive.iter().all(|&n| n > 0)
            && self
                .kernel
                .iter()
                .chain(&self.stride)
                .chain(&self.dilation)
                .all(|&n| n > 0)
            && self.in_channels.is_multiple_of(self.groups)
            && self.out_channels.is_multiple_of(self.groups)
            && self.output_size().is_some()
    }
}
