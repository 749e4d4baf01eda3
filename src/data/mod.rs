//! Images in, tensors out: datasets (CIFAR binaries, image folders, the embedded Shapes),
//! the paper's augmentation, decoding with bounded memory and the test-time views.

pub mod augment;
pub mod cifar;
pub mod dataset;
#[cfg(not(target_family = "wasm"))]
pub mod fetch;
#[cfg(not(target_family = "wasm"))]
pub mod folder;
pub mod image;
pub mod image_set;
#[cfg(not(target_family = "wasm"))]
pub mod imagenet;
pub mod rng;
pub mod spec;
pub mod synthetic;
pub mod views;
