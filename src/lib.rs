//! ResNet (He et al., "Deep Residual Learning for Image Recognition", 2015) on Burn.
//!
//! - [`model`]: the architectures (ImageNet 18–152, CIFAR 6n+2, plain twins), their configs
//!   and analytic parameter / multiply-add counts.
//! - [`io`]: every weights format (Burnpack, PyTorch `.pth`, safetensors) and `.npy`.
//! - [`data`]: image decoding and the test-time views (center, 10-crop, multi-scale).
//! - [`infer`]: classification shared by the CLI and the browser package.

pub mod data;
mod error;
pub mod infer;
pub mod io;
pub mod model;
pub mod readback;
pub mod train;

pub use error::Error;

#[cfg(not(target_family = "wasm"))]
pub mod cli;

#[cfg(target_family = "wasm")]
pub mod web;
