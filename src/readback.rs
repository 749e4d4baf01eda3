//! Reading tensors back from the device. Only async reads: a synchronous read panics in
//! browsers, and one read per step (or evaluation batch) is what keeps WebGPU fast.

use burn::tensor::Tensor;

use crate::Error;

/// Reads a tensor back with an async read (the only kind a browser allows).
pub async fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, Error> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| Error::Device(format!("{e:?}")))?;
    data.try_into_vec_as::<f32>()
        .map_err(|e| Error::Device(format!("{e:?}")))
}
