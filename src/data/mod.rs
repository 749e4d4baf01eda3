//! Images in, tensors out: decoding with bounded memory and the paper's test-time views.

pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod image;
pub mod synthetic;
pub mod views;
