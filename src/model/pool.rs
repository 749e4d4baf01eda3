//! Global average pooling, written once for the head and squeeze-excitation.

use burn::tensor::Tensor;

/// The mean of each channel's map.
///
/// One reduction over the flattened map rather than `mean_dims(&[2, 3])`: burn 0.22's GPU
/// backends (burn-cubecl) give wrong values when they reduce a length-1 axis of a
/// channels-last tensor, which is what their convolutions return, and `mean_dims` reduces
/// the height first, a length-1 axis for a map one pixel high (a 32x64 input to an ImageNet
/// net, or a CIFAR net given a 4x12 one). A 1x1 map is returned as it is. On a GPU the
/// flattening of a channels-last map is a copy, so this is as many launches as before (a copy
/// and a reduction instead of two reductions). See docs/upstream/burn-reduce-unit-axis.md.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, channels, 1, 1]`
pub fn global_average(x: Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    if height * width == 1 {
        return x;
    }
    x.reshape([batch, channels, height * width])
        .mean_dim(2)
        .reshape([batch, channels, 1, 1])
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData, Tolerance};

    use super::*;

    #[test]
    fn averages_each_channel_of_any_map() {
        let device = Device::flex();
        // Channel 0 of a 1x3 map is 1, 2, 6 (mean 3); channel 1 is 0, 0, -3 (mean -1).
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 6.0, 0.0, 0.0, -3.0], [1, 2, 1, 3]),
            &device,
        );
        global_average(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(vec![3.0f32, -1.0], [1, 2, 1, 1]),
                Tolerance::default(),
            );
        // The same values as a 3x1 map, and a 1x1 map as it is.
        global_average(x.clone().reshape([1, 2, 3, 1]))
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(vec![3.0f32, -1.0], [1, 2, 1, 1]),
                Tolerance::default(),
            );
        let one = x.narrow(3, 2, 1);
        global_average(one).into_data().assert_approx_eq::<f32>(
            &TensorData::new(vec![6.0f32, -3.0], [1, 2, 1, 1]),
            Tolerance::default(),
        );
    }
}
