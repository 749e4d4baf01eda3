//! `--device`: which backend runs the model natively.

use burn::tensor::Device;

/// The backends this binary can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (flex): the default; `cpu` is an alias.
    #[value(alias = "cpu")]
    Flex,
    /// wgpu on whatever the platform offers (Vulkan, Metal, DX12).
    Wgpu,
    /// NVIDIA GPUs through CUDA (build with `--features cuda`).
    Cuda,
}

impl Backend {
    /// Creates the device, failing with a sentence if the backend is unavailable.
    pub fn device(self) -> Result<Device, String> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            Backend::Wgpu => Device::wgpu_options().init().map_err(|e| {
                format!(
                    "no wgpu adapter: {e}. Install a Vulkan/Metal driver (on Linux without a GPU, \
                     Mesa's lavapipe: apt-get install mesa-vulkan-drivers) or use --device flex"
                )
            }),
            Backend::Cuda => cuda(),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device, String> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device, String> {
    Err(
        "this binary was built without CUDA: rebuild with `cargo build --release --features cuda`"
            .into(),
    )
}
