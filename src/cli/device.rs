//! `--device`: which backend, and which adapter, runs the model natively.

use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{Device, DeviceKind};

/// A backend and, for GPUs, which one: `flex` (or `cpu`), `wgpu[:N]`, `vulkan[:N]`,
/// `cuda[:N]`. `N` counts the machine's discrete GPUs from 0; without it wgpu picks the
/// best adapter (or `CUBECL_WGPU_DEFAULT_DEVICE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (flex): the default.
    Flex,
    /// wgpu on whatever graphics API the platform offers (Vulkan, Metal, DX12).
    Wgpu(Option<usize>),
    /// wgpu pinned to Vulkan: SPIR-V kernels when built with `--features vulkan`.
    Vulkan(Option<usize>),
    /// NVIDIA GPUs through CUDA (build with `--features cuda`).
    Cuda(usize),
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => {
                let n = index.parse::<usize>().map_err(|_| {
                    format!("'{index}' in --device {text} is not a GPU index (0, 1, …)")
                })?;
                (name, Some(n))
            }
            None => (text, None),
        };
        match (name, index) {
            ("flex" | "cpu", None) => Ok(Self::Flex),
            ("wgpu", index) => Ok(Self::Wgpu(index)),
            ("vulkan", index) => Ok(Self::Vulkan(index)),
            ("cuda", index) => Ok(Self::Cuda(index.unwrap_or(0))),
            ("flex" | "cpu", Some(_)) => Err(format!("--device {text}: the CPU has no index")),
            _ => Err(format!(
                "unknown device '{text}': expected flex (cpu), wgpu[:N], vulkan[:N] or cuda[:N]"
            )),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |i: &Option<usize>| i.map(|i| format!(":{i}")).unwrap_or_default();
        match self {
            Self::Flex => write!(f, "flex"),
            Self::Wgpu(i) => write!(f, "wgpu{}", at(i)),
            Self::Vulkan(i) => write!(f, "vulkan{}", at(i)),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Backend {
    /// Creates the device, failing with a sentence if the backend or the adapter is missing.
    pub fn device(self) -> Result<Device, String> {
        let wgpu = |api, index: Option<usize>| {
            let mut options = Device::wgpu_options().graphics_api(api);
            if let Some(i) = index {
                options = options.device_kind(DeviceKind::DiscreteGpu(i));
            }
            options.init().map_err(|e| {
                let which = match index {
                    Some(i) => format!("discrete GPU {i} (counted from 0)"),
                    None => "adapter".into(),
                };
                format!(
                    "--device {self}: no such wgpu {which}: {e}. Install a Vulkan/Metal driver \
                     (on Linux without a GPU, Mesa's lavapipe: apt-get install \
                     mesa-vulkan-drivers), choose another index, or use --device flex"
                )
            })
        };
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Wgpu(index) => wgpu(WgpuBackend::Auto, index),
            Self::Vulkan(index) => wgpu(WgpuBackend::Vulkan, index),
            Self::Cuda(index) => cuda(index),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device, String> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device, String> {
    Err(
        "this binary was built without CUDA: rebuild with `cargo build --release --features cuda`"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_with_and_without_an_index() {
        assert_eq!("cpu".parse(), Ok(Backend::Flex));
        assert_eq!("wgpu".parse(), Ok(Backend::Wgpu(None)));
        assert_eq!("vulkan:1".parse(), Ok(Backend::Vulkan(Some(1))));
        assert_eq!("cuda".parse(), Ok(Backend::Cuda(0)));
        assert_eq!(Backend::Wgpu(Some(2)).to_string(), "wgpu:2");
        let err = "vulkan:first".parse::<Backend>().unwrap_err();
        assert!(err.contains("not a GPU index"), "{err}");
        let err = "tpu:0".parse::<Backend>().unwrap_err();
        assert!(err.contains("expected flex (cpu), wgpu[:N]"), "{err}");
        assert!("flex:1".parse::<Backend>().is_err());
    }
}
