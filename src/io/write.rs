//! Writing Burnpack files: a model's tensors (BN statistics included) with its card, f32 or
//! f16, to a file atomically or to bytes; on WebGPU every tensor is read back asynchronously.

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::burn_pack::{Tensor as PackTensor, Writer};
#[cfg(not(target_family = "wasm"))]
use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleSnapshot};
#[cfg(not(target_family = "wasm"))]
use burn::tensor::DType;
use burn::tensor::Tensor;

use super::card::ModelCard;
use super::weights::{CARD_KEY, Precision, WeightsError};

/// The pack writer over a model's tensors and its card.
fn writer(tensors: Vec<PackTensor>, card: &ModelCard) -> Writer {
    let json = serde_json::to_string(card).expect("a model card always serialises");
    Writer::new(tensors)
        .with_metadata(CARD_KEY, &json)
        .with_metadata("format", "resnet-burnpack-1")
}

#[cfg(not(target_family = "wasm"))]
fn precision_adapter(precision: Precision) -> Option<Box<dyn ModuleAdapter>> {
    match precision {
        Precision::F32 => None,
        Precision::F16 => Some(Box::new(FloatCastAdapter::to(DType::F16))),
    }
}

/// Writes `model` with its card as a Burnpack file, atomically: a crash mid-write leaves
/// any previous file at `path` intact. Reads tensors synchronously (native only).
#[cfg(not(target_family = "wasm"))]
pub fn save<M: Module + ModuleSnapshot>(
    model: &M,
    card: &ModelCard,
    path: &std::path::Path,
    precision: Precision,
) -> Result<(), WeightsError> {
    // Tensors are named by the tree's own paths, not under [crate::model::Network]'s variant.
    let tensors = model.collect(None, precision_adapter(precision), true);
    writer(tensors, card)
        .auto_extension(false)
        .write_to_file(path)
        .map_err(|e| WeightsError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Burnpack bytes of `model` with its card, read synchronously (native only).
#[cfg(not(target_family = "wasm"))]
pub fn to_bytes<M: Module + ModuleSnapshot>(
    model: &M,
    card: &ModelCard,
    precision: Precision,
) -> Result<Vec<u8>, WeightsError> {
    let tensors = model.collect(None, precision_adapter(precision), true);
    pack(tensors, card)
}

/// Burnpack bytes of `model` with its card, reading every tensor with an async read-back:
/// the only way that works on WebGPU in a browser, and fine on any other device.
pub async fn to_bytes_async<M: Module>(
    model: &M,
    card: &ModelCard,
    precision: Precision,
) -> Result<Vec<u8>, WeightsError> {
    pack(read_tensors(model, precision).await?, card)
}

/// Every tensor of `model` (BN running statistics included), read back asynchronously and
/// named by its module path.
pub async fn read_tensors<M: Module>(
    model: &M,
    precision: Precision,
) -> Result<Vec<PackTensor>, WeightsError> {
    let mut params = ParamList::default();
    model.visit(&mut params);
    let mut tensors = Vec::with_capacity(params.items.len());
    for (name, id, shape, tensor) in params.items {
        let device_error = |e: &dyn std::fmt::Debug| WeightsError::Io {
            path: "<device>".into(),
            source: std::io::Error::other(format!("{name}: {e:?}")),
        };
        let data = tensor
            .into_data_async()
            .await
            .map_err(|e| device_error(&e))?;
        let data = match precision {
            Precision::F32 => data,
            Precision::F16 => data
                .try_cast_as::<half::f16>()
                .map_err(|e| device_error(&e))?,
        };
        let (bytes, _, dtype) = data.into_parts();
        tensors.push(PackTensor::new(name, dtype, shape, Some(id), bytes));
    }
    Ok(tensors)
}

fn pack(tensors: Vec<PackTensor>, card: &ModelCard) -> Result<Vec<u8>, WeightsError> {
    writer(tensors, card)
        .into_bytes()
        .map(|bytes| bytes.to_vec())
        .map_err(|e| WeightsError::Io {
            path: "<memory>".into(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Every float tensor of a module with its path, flattened so that one type holds all ranks;
/// an enum's variant (as in [crate::model::Network]) is no part of the path.
#[derive(Default)]
struct ParamList {
    path: crate::model::network::ModulePath,
    items: Vec<(String, u64, Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for ParamList {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val().inner();
        let shape = tensor.dims().to_vec();
        let flat = tensor.reshape([shape.iter().product::<usize>()]);
        self.items
            .push((self.path.joined(), param.id.val(), shape, flat));
    }
}
