//! Mixed precision, as PyTorch's autocast: inside [scope], every convolution of a net computes
//! in 16-bit floats (its input and weight cast down, its output cast back up), while weights,
//! batch normalization, the classifier, the loss and the optimizer stay in f32.
//!
//! The convolutions hold nearly all of a ResNet's multiply-adds, and on a GPU with 16-bit
//! matrix units (tensor cores; Vulkan's cooperative matrices) they run there at several times
//! the f32 rate, on half the bytes. Batch normalization's statistics and the loss keep f32's
//! range. The casts are autodiff ops, so the backward pass casts each gradient back the same
//! way: weight gradients arrive in f32. f16's narrow range needs loss scaling
//! ([crate::train::loss_scale]); bf16 has f32's exponent and does not.
//!
//! The setting is per thread, like autocast's, so one forward pass reads it wherever it runs
//! (the training step runs the forward on a pool thread: it opens the scope there).

use std::cell::Cell;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The dtype of a net's convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Amp {
    /// Everything in f32.
    #[default]
    Off,
    /// Convolutions in IEEE half precision (5-bit exponent: needs loss scaling).
    F16,
    /// Convolutions in bfloat16 (f32's exponent, 8-bit mantissa).
    Bf16,
}

impl Amp {
    /// The 16-bit dtype, `None` when off.
    pub fn dtype(self) -> Option<FloatDType> {
        match self {
            Amp::Off => None,
            Amp::F16 => Some(FloatDType::F16),
            Amp::Bf16 => Some(FloatDType::BF16),
        }
    }

    /// Whether gradients need loss scaling to stay inside the dtype's range.
    pub fn scales_loss(self) -> bool {
        self == Amp::F16
    }

    /// An error naming the problem when `device` cannot compute in this dtype (WGSL and
    /// SPIR-V have no bf16 arithmetic), or is a GPU without 16-bit matrix units (tensor cores,
    /// Vulkan's cooperative matrices) for it. There burn's kernels gain nothing from it, and
    /// the ones autotuning picks sum a weight gradient in 16 bits: on lavapipe every weight
    /// gradient of a ResNet-8 came out 9–17 % off. The CPU (flex) takes it, as a reference: its
    /// gemm sums f16 in f32 blocks and converts bf16 to f32.
    pub fn check(self, device: &Device) -> Result<(), String> {
        use burn::backend::{Backend, DTypeUsage, Dispatch};
        let Some(dtype) = self.dtype() else {
            return Ok(());
        };
        let device = device.clone().inner();
        let alternative = if self == Amp::Bf16 {
            ", or with --amp f16"
        } else {
            ""
        };
        if !device.supports_dtype(dtype) {
            return Err(format!(
                "this device cannot compute in {}: train without --amp{alternative}",
                self.name()
            ));
        }
        let usage = Dispatch::dtype_usage(device.as_dispatch(), dtype.into());
        if device != Device::flex() && !usage.contains(DTypeUsage::Accelerated) {
            return Err(format!(
                "this GPU has no {0} matrix units (tensor cores, Vulkan cooperative matrices): \
                 --amp {0} would run no faster, and burn's kernels would sum its weight \
                 gradients in {0}, losing about 10 %; train without --amp",
                self.name()
            ));
        }
        Ok(())
    }

    /// `off`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Amp::Off => "off",
            Amp::F16 => "f16",
            Amp::Bf16 => "bf16",
        }
    }
}

thread_local! {
    static DTYPE: Cell<Option<FloatDType>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's convolutions in `amp`'s dtype (the setting before is restored
/// after, also when `f` panics).
pub fn scope<R>(amp: Amp, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<FloatDType>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DTYPE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DTYPE.with(|d| d.replace(amp.dtype())));
    f()
}

/// Whether this thread is inside a 16-bit [scope] (the CPU's channels-last inference path,
/// which is f32 only, steps aside).
pub(crate) fn active() -> bool {
    DTYPE.with(Cell::get).is_some()
}

/// `conv.forward(x)` in the scope's dtype, with an f32 output; `None` outside a scope (or for
/// an input that is not f32, or `Same` padding, which needs burn's private padding rule).
///
/// # Shapes
/// - `x`: `[batch, in, height, width]`
/// - output: `[batch, out, oh, ow]`
pub(crate) fn convolve(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let dtype = DTYPE.with(Cell::get)?;
    if x.dtype() != DType::F32 {
        return None;
    }
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Same => return None,
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    let y = conv2d(
        x.clone().cast(dtype),
        conv.weight.val().cast(dtype),
        conv.bias.as_ref().map(|b| b.val().cast(dtype)),
        options,
    );
    Some(y.cast(FloatDType::F32))
}

/// `conv.forward(x)`, in 16 bits inside a scope.
pub(crate) fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    convolve(conv, &x).unwrap_or_else(|| conv.forward(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::TensorData;

    fn net(device: &Device) -> (Conv2d, Tensor<4>) {
        let conv = Conv2dConfig::new([8, 16], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 0, 1, 2))
            .with_stride([2, 1])
            .init(device);
        let values: Vec<f32> = (0..2 * 8 * 9 * 7)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x = Tensor::from_data(TensorData::new(values, [2, 8, 9, 7]), device);
        (conv, x)
    }

    fn max_relative_error(got: Tensor<4>, want: Tensor<4>) -> f32 {
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        let want = want.into_data().try_to_vec::<f32>().unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let error = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        error / scale
    }

    #[test]
    fn a_scoped_convolution_computes_in_16_bits_and_returns_f32() {
        let device = Device::flex();
        let (conv, x) = net(&device);
        let want = conv.forward(x.clone());
        assert!(convolve(&conv, &x).is_none(), "no scope, no cast");
        // f16 keeps 11 significant bits, bf16 8: the rounding of inputs and weights shows at
        // those levels (relative to the largest output), and not much below.
        for (amp, at_most, at_least) in [(Amp::F16, 2e-3, 1e-5), (Amp::Bf16, 2e-2, 2e-4)] {
            let got = scope(amp, || convolve(&conv, &x)).expect("in scope");
            assert_eq!(got.dtype(), DType::F32);
            assert_eq!(got.dims(), want.dims());
            let error = max_relative_error(got, want.clone());
            assert!(error < at_most && error > at_least, "{amp:?}: {error}");
        }
        assert!(
            convolve(&conv, &x).is_none(),
            "the scope ends with its closure"
        );
    }

    #[test]
    fn gradients_flow_back_in_f32() {
        let device = Device::flex().autodiff();
        let (conv, x) = net(&device);
        let x = x.require_grad();
        let grads = |amp| {
            let y = scope(amp, || convolve(&conv, &x)).unwrap_or_else(|| conv.forward(x.clone()));
            let grads = (y.clone() * y).sum().backward();
            let dw = conv.weight.grad(&grads).unwrap();
            let dx = x.grad(&grads).unwrap();
            (dw, dx)
        };
        let (dw, dx) = grads(Amp::Off);
        let (dw16, dx16) = grads(Amp::F16);
        assert_eq!((dw16.dtype(), dx16.dtype()), (DType::F32, DType::F32));
        let error = max_relative_error(dw16, dw);
        assert!(error < 5e-3, "weight gradient: {error}");
        let error = max_relative_error(dx16, dx);
        assert!(error < 5e-3, "input gradient: {error}");
    }
}
