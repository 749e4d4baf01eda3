//! Which device runs the model in the browser: WebGPU when the browser offers an adapter,
//! otherwise (or on request) the flex CPU backend compiled into the same package — never
//! silently: [BackendInfo] says which one runs and why.

use std::cell::RefCell;

use burn::tensor::Device;
use serde::Serialize;
#[cfg(not(target_feature = "atomics"))]
use wasm_bindgen::{JsCast, JsValue};

/// What the page shows in its backend badge.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendInfo {
    /// `"webgpu"` or `"cpu"`.
    pub backend: &'static str,
    /// The adapter's description (name, driver) or the CPU backend's.
    pub adapter: String,
    /// Why the CPU runs although WebGPU was wanted: missing `navigator.gpu`, no adapter, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The CPU's threads: 1, or the threaded build's pool (absent on WebGPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

/// The caller's wish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// WebGPU if available, else the CPU, saying why.
    Auto,
    /// WebGPU or an error.
    WebGpu,
    /// The CPU even when WebGPU is there.
    Cpu,
}

impl Preference {
    /// Parses `"auto" | "webgpu" | "cpu"` (absent means auto).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or("auto") {
            "auto" => Ok(Self::Auto),
            "webgpu" | "gpu" => Ok(Self::WebGpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!(
                "unknown device '{other}': expected auto, webgpu or cpu"
            )),
        }
    }
}

/// The outcome of the one WebGPU initialisation a page gets (burn's runtime cannot be
/// initialised twice).
#[derive(Clone)]
#[cfg_attr(target_feature = "atomics", allow(dead_code))]
enum Gpu {
    Ready(Device, String),
    Unavailable(String),
}

thread_local! {
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

/// The CPU kernels' threads: one, or the threaded build's pool.
fn cpu_threads() -> usize {
    #[cfg(parallel)]
    return rayon::current_num_threads();
    #[cfg(not(parallel))]
    1
}

fn cpu(reason: Option<String>) -> (Device, BackendInfo) {
    let threads = cpu_threads();
    let build = if cfg!(parallel) {
        "threaded build"
    } else {
        "single-threaded build"
    };
    let info = BackendInfo {
        backend: "cpu",
        adapter: format!("flex (Burn's CPU backend, WebAssembly, {build})"),
        fallback_reason: reason,
        threads: Some(threads),
    };
    (Device::flex(), info)
}

#[cfg(not(target_feature = "atomics"))]
/// `navigator.gpu` of the global scope (window or worker), if there is one.
fn navigator_gpu() -> Option<JsValue> {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &JsValue::from_str("navigator"))
        .ok()
        .filter(|n| !n.is_undefined())
        .and_then(|navigator| js_sys::Reflect::get(&navigator, &JsValue::from_str("gpu")).ok())
        .filter(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

#[cfg(not(target_feature = "atomics"))]
/// The adapter's vendor, architecture and description from `GPUAdapter.info` (wgpu passes on
/// only the description, which browsers usually leave empty).
async fn adapter_details(gpu: &JsValue) -> Option<String> {
    let get = |v: &JsValue, k: &str| js_sys::Reflect::get(v, &JsValue::from_str(k)).ok();
    let request: js_sys::Function = get(gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    let info = get(&adapter, "info")?;
    let parts: Vec<String> = ["vendor", "architecture", "description"]
        .iter()
        .filter_map(|k| get(&info, k)?.as_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The threaded build has no WebGPU (Cargo.toml says why): the page loads it only for the CPU.
#[cfg(target_feature = "atomics")]
async fn init_gpu() -> Gpu {
    Gpu::Unavailable("this is the threaded CPU build of the package, which has no WebGPU".into())
}

#[cfg(not(target_feature = "atomics"))]
async fn init_gpu() -> Gpu {
    let Some(gpu) = navigator_gpu() else {
        return Gpu::Unavailable("this browser has no WebGPU (navigator.gpu is missing)".into());
    };
    match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            let mut adapter = match adapter_details(&gpu).await {
                Some(details) => details,
                None if !info.name.is_empty() => info.name.clone(),
                None => "WebGPU adapter".into(),
            };
            if info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu {
                adapter.push_str(" [software]");
            }
            Gpu::Ready(device, adapter)
        }
        Err(err) => Gpu::Unavailable(format!("WebGPU gave no usable adapter: {err}")),
    }
}

/// The device for `preference`, initialising WebGPU on first use.
pub async fn device(preference: Preference) -> Result<(Device, BackendInfo), String> {
    if preference == Preference::Cpu {
        return Ok(cpu(None));
    }
    let known = GPU.with(|gpu| gpu.borrow().clone());
    let gpu = match known {
        Some(gpu) => gpu,
        None => {
            let gpu = init_gpu().await;
            GPU.with(|slot| *slot.borrow_mut() = Some(gpu.clone()));
            gpu
        }
    };
    match (gpu, preference) {
        (Gpu::Ready(device, adapter), _) => Ok((
            device,
            BackendInfo {
                backend: "webgpu",
                adapter,
                fallback_reason: None,
                threads: None,
            },
        )),
        (Gpu::Unavailable(reason), Preference::WebGpu) => Err(reason),
        (Gpu::Unavailable(reason), _) => Ok(cpu(Some(reason))),
    }
}
