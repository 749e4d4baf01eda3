//! The successors' ops on native wgpu against the CPU (flex): grouped convolution and
//! squeeze-excitation, dense concatenation, split attention and Inception-ResNet units,
//! forward in train mode and backward (the cases in tests/ops, which tests/web.rs also runs
//! on WebGPU in Chromium). On a machine without a GPU wgpu runs on lavapipe, Mesa's Vulkan on
//! the CPU, which `scripts/setup.sh --browser` installs.
#![cfg(not(target_family = "wasm"))]

mod ops;

use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{Device, Tensor};

/// wgpu pinned to Vulkan (without the pin it falls back to OpenGL where Vulkan is missing),
/// set up once for the process (wgpu's runtime registers only once).
fn gpu() -> Device {
    static GPU: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    GPU.get_or_init(|| {
        let options = Device::wgpu_options().graphics_api(WgpuBackend::Vulkan);
        options.init().unwrap_or_else(|e| {
            panic!(
                "no Vulkan adapter for wgpu: {e}. Install a Vulkan driver (without a GPU, Mesa's \
                 lavapipe: scripts/setup.sh --browser, or apt-get install mesa-vulkan-drivers)"
            )
        })
    })
    .clone()
}

fn read(tensor: Tensor<4>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

fn on_wgpu(case: ops::Case) {
    let read_all = |device: &Device| -> Vec<(&'static str, Vec<f32>)> {
        case.run(device)
            .into_iter()
            .map(|(name, tensor)| (name, read(tensor)))
            .collect()
    };
    let want = read_all(&ops::cpu());
    let got = read_all(&gpu().autodiff());
    for ((name, got), (_, want)) in got.iter().zip(&want) {
        println!("{}", ops::check(name, got, want));
    }
}

#[test]
fn grouped_convolution_and_squeeze_excitation_match_the_cpu_on_wgpu() {
    on_wgpu(ops::grouped_convolution_and_squeeze_excitation());
}

#[test]
fn pooling_a_map_one_pixel_high_matches_the_cpu_on_wgpu() {
    on_wgpu(ops::pooling_a_map_one_pixel_high());
}

#[test]
fn folded_inference_matches_the_cpu_on_wgpu() {
    on_wgpu(ops::folded_inference());
}

#[test]
fn dense_concatenation_matches_the_cpu_on_wgpu() {
    on_wgpu(ops::dense_concatenation());
}

#[test]
fn split_attention_matches_the_cpu_on_wgpu() {
    on_wgpu(ops::split_attention());
}

#[test]
fn inception_resnet_units_match_the_cpu_on_wgpu() {
    on_wgpu(ops::inception_resnet_units());
}

/// Mixed precision on a GPU without 16-bit matrix units (lavapipe): refused by name, f16
/// because burn's kernels would sum weight gradients in f16 there (a ResNet-8's came out
/// 9–17 % off, measured before the refusal), bf16 because WGSL has none.
#[test]
fn mixed_precision_is_refused_on_a_gpu_without_16_bit_matrix_units() {
    use resnet::model::amp::Amp;
    let device = gpu().autodiff();
    let err = Amp::Bf16.check(&device).unwrap_err();
    assert!(err.contains("cannot compute in bf16"), "{err}");
    let err = Amp::F16.check(&device).unwrap_err();
    assert!(err.contains("no f16 matrix units"), "{err}");
    assert!(Amp::Off.check(&device).is_ok());
}
