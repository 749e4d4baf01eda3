//! Every weights format goes through here: Burnpack (`.bpk`, the project's own, self-describing),
//! PyTorch `.pth` state dicts (read without running pickle code) and `.safetensors`.
//!
//! All sources become one list of named tensors, keys are mapped onto this crate's module
//! tree, and a single check refuses any file that does not fit the model exactly: a missing
//! tensor, an unexpected one or a wrong shape is listed by name, and the model is never
//! returned half loaded.

use burn::store::burn_pack::{self, Reader, Tensor as PackTensor};
use burn::store::{
    ApplyError, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

use super::card::ModelCard;
use crate::model::{
    DenseNet, DenseNetConfig, InceptionResNet, InceptionResNetConfig, NetConfig, Network, ResNet,
    ResNetConfig,
};

/// Metadata key under which a Burnpack file carries its [ModelCard].
pub(crate) const CARD_KEY: &str = "resnet.card";

/// Where the tensors of a file come from, which decides how keys and layouts are mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightsFormat {
    /// This crate's Burnpack files: Burn layout, same key names.
    Burnpack,
    /// A PyTorch `torch.save(state_dict)` file.
    Pytorch,
    /// A safetensors file in torchvision layout.
    Safetensors,
}

impl WeightsFormat {
    /// Recognises a format from the first bytes of a file.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [b'B', b'U', b'R', b'N', ..] | [b'N', b'R', b'U', b'B', ..] => Some(Self::Burnpack),
            // A zip archive (torch >= 1.6) or a legacy pickle (protocol 2+).
            [b'P', b'K', 3, 4, ..] | [0x80, 2..=5, ..] => Some(Self::Pytorch),
            // safetensors: an 8-byte little-endian header length, then a JSON object.
            [_, _, _, _, _, _, _, _, b'{', ..] => Some(Self::Safetensors),
            _ => None,
        }
    }
}

/// Float precision of stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Precision {
    /// 32-bit floats: bit-exact round trips.
    #[default]
    F32,
    /// 16-bit floats: half the size; loaded back as f32.
    F16,
}

/// Why weights could not be read, written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The bytes are not any supported weights format.
    #[error("{path}: not a weights file (expected Burnpack .bpk, PyTorch .pth or .safetensors)")]
    UnknownFormat {
        /// The file.
        path: String,
    },
    /// The file claims a format but its contents are broken (truncated, corrupt).
    #[error("{path}: corrupt or truncated {format:?} file: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// The format it claimed.
        format: WeightsFormat,
        /// The reader's complaint.
        detail: String,
    },
    /// A PyTorch pickle names Python code beyond torch's tensors and containers. Nothing in
    /// it is run either way; such a file is refused, as `torch.load(weights_only=True)` does.
    #[error(
        "{path}: refused: its pickle refers to the Python global `{global}`; a weights file \
         needs only torch tensors and containers, so a file naming other code is not loaded \
         (nothing in it was run)"
    )]
    Unsafe {
        /// The file.
        path: String,
        /// The first global outside `torch` that the pickle refers to, e.g. `posix.system`.
        global: String,
    },
    /// The file is fine but holds weights for another model.
    #[error("{path}: weights do not fit {arch}: {summary}{details}")]
    Mismatch {
        /// The file.
        path: String,
        /// The model the weights were loaded into.
        arch: String,
        /// One line: counts of each kind of problem.
        summary: String,
        /// One problem per line.
        details: String,
    },
}

/// Tensors read from a weights file, ready to be applied to a model.
pub struct WeightsFile {
    /// Where they came from, for messages.
    pub path: String,
    /// The format they were read from.
    pub format: WeightsFormat,
    /// The model card of a Burnpack file written by this crate.
    pub card: Option<ModelCard>,
    tensors: Vec<PackTensor>,
}

impl WeightsFile {
    /// Reads a weights file of any supported format.
    #[cfg(not(target_family = "wasm"))]
    pub fn open(path: &std::path::Path) -> Result<Self, WeightsError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
            path: name.clone(),
            source,
        })?;
        match WeightsFormat::sniff(&bytes) {
            Some(WeightsFormat::Pytorch) => Self::read_pytorch(path),
            Some(_) => Self::from_bytes(bytes, &name),
            None => Err(WeightsError::UnknownFormat { path: name }),
        }
    }

    /// Reads Burnpack or safetensors bytes (PyTorch pickles need a file: see [open](Self::open)).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Self, WeightsError> {
        let corrupt = |format, detail: String| WeightsError::Corrupt {
            path: name.to_string(),
            format,
            detail,
        };
        match WeightsFormat::sniff(&bytes) {
            Some(WeightsFormat::Burnpack) => {
                let format = WeightsFormat::Burnpack;
                let reader = Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes))
                    .map_err(|e| corrupt(format, e.to_string()))?;
                let card = match reader.metadata().get(CARD_KEY) {
                    Some(json) => {
                        let card: ModelCard = serde_json::from_str(json)
                            .map_err(|e| corrupt(format, format!("bad model card: {e}")))?;
                        card.validate()
                            .map_err(|e| corrupt(format, format!("bad model card: {e}")))?;
                        Some(card)
                    }
                    None => None,
                };
                let tensors = reader
                    .into_tensors()
                    .map_err(|e| corrupt(format, e.to_string()))?;
                Ok(Self {
                    path: name.to_string(),
                    format,
                    card,
                    tensors,
                })
            }
            Some(WeightsFormat::Safetensors) => {
                let format = WeightsFormat::Safetensors;
                let mut store = SafetensorsStore::from_bytes(Some(bytes));
                let tensors = burn::store::ModuleStore::get_all_tensors(&mut store)
                    .map_err(|e| corrupt(format, e.to_string()))?
                    .values()
                    .cloned()
                    .collect();
                Ok(Self {
                    path: name.to_string(),
                    format,
                    card: None,
                    tensors: torch_keys(tensors),
                })
            }
            Some(WeightsFormat::Pytorch) => Err(corrupt(
                WeightsFormat::Pytorch,
                "PyTorch pickles can only be imported natively (`resnet import`); \
                 convert to .bpk or .safetensors for the browser"
                    .into(),
            )),
            None => Err(WeightsError::UnknownFormat {
                path: name.to_string(),
            }),
        }
    }

    #[cfg(not(target_family = "wasm"))]
    fn read_pytorch(path: &std::path::Path) -> Result<Self, WeightsError> {
        use burn::store::pytorch_reader::PytorchReader;
        let name = path.display().to_string();
        let corrupt = |e: &dyn std::fmt::Display| WeightsError::Corrupt {
            path: name.clone(),
            format: WeightsFormat::Pytorch,
            detail: e.to_string(),
        };
        let pickle = PytorchReader::read_pickle_data(path, None).map_err(|e| corrupt(&e))?;
        if let Some(global) = foreign_global(&pickle) {
            return Err(WeightsError::Unsafe { path: name, global });
        }
        let reader = PytorchReader::new(path).map_err(|e| corrupt(&e))?;
        // Training checkpoints nest the state dict; torchvision's files are the state dict.
        let nested = ["state_dict", "model_state_dict", "model", "net"]
            .into_iter()
            .find(|key| {
                let prefix = format!("{key}.");
                reader.keys().iter().any(|k| k.starts_with(&prefix))
                    && !reader.keys().iter().any(|k| k == "conv1.weight")
            });
        let reader = match nested {
            Some(key) => PytorchReader::with_top_level_key(path, key).map_err(|e| corrupt(&e))?,
            None => reader,
        };
        let tensors = reader
            .into_tensors()
            .into_values()
            .map(burn::store::bridge::from_pytorch)
            .collect();
        Ok(Self {
            path: name,
            format: WeightsFormat::Pytorch,
            card: None,
            tensors: torch_keys(tensors),
        })
    }

    /// Tensors already in memory, named as in this crate's module tree (Burn layout).
    pub fn from_tensors(name: &str, tensors: Vec<PackTensor>) -> Self {
        Self {
            path: name.to_string(),
            format: WeightsFormat::Burnpack,
            card: None,
            tensors,
        }
    }

    /// The names of the tensors in the file, after key mapping, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.tensors.iter().map(|t| t.name.clone()).collect();
        keys.sort();
        keys
    }

    /// Loads the tensors into `model`, which must be built from `config`; every tensor of the
    /// model must be in the file with its shape, and nothing else may be; a file whose card
    /// describes another model is refused.
    pub fn apply_network(
        self,
        model: Network,
        config: &NetConfig,
    ) -> Result<Network, WeightsError> {
        self.apply_as(model, config)
    }

    /// [apply_network](Self::apply_network) for one tree's module.
    fn apply_as<M: ModuleSnapshot>(self, model: M, config: &NetConfig) -> Result<M, WeightsError> {
        let arch = format!("{} ({} classes)", config.name(), config.num_classes());
        if let Some(card) = &self.card
            && card.config != *config
        {
            return Err(WeightsError::Mismatch {
                path: self.path,
                arch,
                summary: format!(
                    "the file holds {} ({} classes)",
                    card.config.name(),
                    card.config.num_classes()
                ),
                details: String::new(),
            });
        }
        self.apply_module(model, arch)
    }

    /// [apply_network](Self::apply_network) for a ResNet.
    pub fn apply(self, model: ResNet, config: &ResNetConfig) -> Result<ResNet, WeightsError> {
        self.apply_as(model, &config.clone().into())
    }

    /// [apply_network](Self::apply_network) for a DenseNet (torchvision's layout).
    pub fn apply_densenet(
        self,
        model: DenseNet,
        config: &DenseNetConfig,
    ) -> Result<DenseNet, WeightsError> {
        self.apply_as(model, &config.clone().into())
    }

    /// [apply_network](Self::apply_network) for Inception-ResNet-v2 (timm's layout).
    pub fn apply_inception_resnet(
        self,
        model: InceptionResNet,
        config: &InceptionResNetConfig,
    ) -> Result<InceptionResNet, WeightsError> {
        self.apply_as(model, &config.clone().into())
    }

    /// Every tensor of `model` from the file, and nothing else; `arch` names it in errors.
    fn apply_module<M: ModuleSnapshot>(
        self,
        mut model: M,
        arch: String,
    ) -> Result<M, WeightsError> {
        let to_f32 = FloatCastAdapter::to(DType::F32);
        let adapter: Box<dyn ModuleAdapter> = match self.format {
            WeightsFormat::Burnpack => Box::new(to_f32),
            _ => Box::new(PyTorchToBurnAdapter.chain(to_f32)),
        };
        let result = model.apply(self.tensors, None, Some(adapter), true);

        let mut lines = Vec::new();
        let errors: Vec<String> = result.errors.iter().map(describe).collect();
        let errors: Vec<&str> = errors.iter().map(String::as_str).collect();
        list(&mut lines, "wrong shape or type", &errors);
        let mut missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        missing.sort();
        let mut unused: Vec<&str> = result.unused.iter().map(String::as_str).collect();
        unused.sort();
        list(&mut lines, "missing from the file", &missing);
        list(&mut lines, "in the file but not in the model", &unused);
        if lines.is_empty() {
            return Ok(model);
        }
        Err(WeightsError::Mismatch {
            path: self.path,
            arch,
            summary: format!(
                "{} shape/dtype/read errors, {} missing tensors, {} unexpected tensors",
                result.errors.len(),
                missing.len(),
                unused.len()
            ),
            details: format!("\n{}", lines.join("\n")),
        })
    }
}

/// One line for a tensor that could not be applied, shapes in the model's (Burn) layout.
fn describe(error: &ApplyError) -> String {
    let dims = |s: &burn::tensor::Shape| format!("{:?}", s.as_slice());
    match error {
        ApplyError::ShapeMismatch {
            path,
            expected,
            found,
        } => {
            format!("{path} (model {}, file {})", dims(expected), dims(found))
        }
        ApplyError::DTypeMismatch {
            path,
            expected,
            found,
        } => {
            format!("{path} (model {expected:?}, file {found:?})")
        }
        ApplyError::AdapterError { path, message } | ApplyError::LoadError { path, message } => {
            format!("{path} ({message})")
        }
    }
}

/// Appends `what: a, b, c … and N more` when `keys` is not empty.
fn list(lines: &mut Vec<String>, what: &str, keys: &[&str]) {
    const SHOWN: usize = 8;
    if keys.is_empty() {
        return;
    }
    let mut line = format!("  {what}: {}", keys[..keys.len().min(SHOWN)].join(", "));
    if keys.len() > SHOWN {
        line.push_str(&format!(" … and {} more", keys.len() - SHOWN));
    }
    lines.push(line);
}

/// The first Python global outside `torch` in a pickle's value tree: the reader interprets
/// only torch's tensor rebuilds and the standard containers, and names everything else it
/// meets (an `os.system` call, a numpy scalar, an `argparse.Namespace`) by its global.
#[cfg(not(target_family = "wasm"))]
fn foreign_global(value: &burn::store::pytorch_reader::PickleValue) -> Option<String> {
    use burn::store::pytorch_reader::PickleValue;
    match value {
        PickleValue::Unsupported(name) => {
            (name != "torch" && !name.starts_with("torch.")).then(|| name.clone())
        }
        PickleValue::List(items) => items.iter().find_map(foreign_global),
        PickleValue::Dict(entries) => {
            // Sorted, so that the name reported does not depend on hash order.
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            keys.into_iter().find_map(|k| foreign_global(&entries[k]))
        }
        _ => None,
    }
}

/// Maps the key names of PyTorch implementations onto this crate's module tree.
///
/// - `num_batches_tracked` buffers have no counterpart (Burn's BN keeps no such counter);
/// - `module.` prefixes come from `nn.DataParallel`;
/// - torchvision's `downsample` is an `nn.Sequential(conv, bn)`: `.0`/`.1` → `.conv`/`.bn`
///   (timm's ResNet-D: `(pool, conv, bn)`, `.1`/`.2`);
/// - timm's deep stem (`conv1.0` … `conv1.6`) and ResNeSt's split-attention `conv2`
///   (`conv2.conv`, `bn0`, `fc1`, `bn1`, `fc2`), see [deep_stem_key] and the table below;
/// - popular CIFAR ports name the projection `shortcut` and the classifier `linear`;
/// - pre-activation nets: timm's `resnetv2` names the stem `stem.conv`, the blocks
///   `stages.I.blocks.J` with `normK` BNs and its classifier a 1x1 convolution `head.fc`
///   (mapped onto `conv1`, `layer{I+1}.J`, `bnK` and a `fc` matrix); the CIFAR ports name the
///   final BN `bn` (this crate and timm: `norm`).
fn torch_keys(tensors: Vec<PackTensor>) -> Vec<PackTensor> {
    // ResNet-D's projections are `nn.Sequential(pool, conv, bn)`: `.1`/`.2` → `.conv`/`.bn`.
    let avg_down = tensors.iter().any(|t| t.name.contains(".downsample.2."));
    let downsample: [(&str, &str); 2] = match avg_down {
        true => [
            (".downsample.1.", ".downsample.conv."),
            (".downsample.2.", ".downsample.bn."),
        ],
        false => [
            (".downsample.0.", ".downsample.conv."),
            (".downsample.1.", ".downsample.bn."),
        ],
    };
    tensors
        .into_iter()
        .filter(|t| !t.name.ends_with("num_batches_tracked"))
        .map(|mut t| {
            let mut name = t
                .name
                .strip_prefix("module.")
                .unwrap_or(&t.name)
                .to_string();
            for (from, to) in downsample.into_iter().chain([
                (".shortcut.0.", ".downsample.conv."),
                (".shortcut.1.", ".downsample.bn."),
                // ResNeSt's split-attention `conv2`: its convolution and BN are the block's
                // conv2 and bn2, its gate the block's `attn`.
                (".conv2.conv.", ".conv2."),
                (".conv2.bn0.", ".bn2."),
                (".conv2.fc1.", ".attn.fc1."),
                (".conv2.bn1.", ".attn.bn1."),
                (".conv2.fc2.", ".attn.fc2."),
            ]) {
                name = name.replace(from, to);
            }
            name = deep_stem_key(name);
            if let Some(rest) = name.strip_prefix("linear.") {
                name = format!("fc.{rest}");
            }
            name = resnetv2_key(name);
            name = densenet_key(name);
            name = inception_key(name);
            if name == "fc.weight"
                && let [out, features, 1, 1] = t.shape.as_slice()
            {
                // timm's head is a 1x1 convolution over the pooled features: the same matrix.
                t.shape = burn::tensor::Shape::from(vec![*out, *features]);
            }
            t.name = name;
            t
        })
        .collect()
}

/// timm's Inception-ResNet-v2 key for this crate's, where every branch is a `Vec`: its
/// single-unit branches `X.branchB.conv` / `.bn` are `X.branchB.0.conv` / `.bn`, and
/// `mixed_5b.branch3.1` (after its parameter-free pool `.0`) is `mixed_5b.branch3.0`.
fn inception_key(name: String) -> String {
    if let Some(rest) = name.strip_prefix("mixed_5b.branch3.1.") {
        return format!("mixed_5b.branch3.0.{rest}");
    }
    let Some((head, rest)) = name.split_once(".branch") else {
        return name;
    };
    let Some((branch, tail)) = rest.split_once('.') else {
        return name;
    };
    if branch.parse::<usize>().is_ok() && (tail.starts_with("conv.") || tail.starts_with("bn.")) {
        return format!("{head}.branch{branch}.0.{tail}");
    }
    name
}

/// timm's deep stem `conv1.{0,1,3,4,6}` (an `nn.Sequential` of conv, BN, ReLU, conv, BN,
/// ReLU, conv) for this crate's `deep_stem.{conv1,bn1,conv2,bn2}` and `conv1`.
fn deep_stem_key(name: String) -> String {
    for (from, to) in [
        ("conv1.0.", "deep_stem.conv1."),
        ("conv1.1.", "deep_stem.bn1."),
        ("conv1.3.", "deep_stem.conv2."),
        ("conv1.4.", "deep_stem.bn2."),
        ("conv1.6.", "conv1."),
    ] {
        if let Some(rest) = name.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    name
}

/// torchvision's DenseNet key for this crate's: `denseblockB.denselayerL.` is the Vec
/// element `denseblockB.{L-1}.`; checkpoints from before torchvision 0.3 also spell the layers'
/// `norm1`, `conv2` … as `norm.1`, `conv.2` (torchvision's loader rewrites them the same way).
fn densenet_key(name: String) -> String {
    let Some((head, rest)) = name.split_once(".denselayer") else {
        return name;
    };
    let Some((index, tail)) = rest.split_once('.') else {
        return name;
    };
    let Some(index) = index.parse::<usize>().ok().and_then(|i| i.checked_sub(1)) else {
        return name;
    };
    let mut tail = tail.to_string();
    for (from, to) in [("norm.", "norm"), ("conv.", "conv"), ("relu.", "relu")] {
        if let Some(rest) = tail.strip_prefix(from) {
            tail = format!("{to}{rest}");
        }
    }
    format!("{head}.{index}.{tail}")
}

/// timm's `resnetv2` key for this crate's (see [torch_keys]); other keys pass unchanged.
fn resnetv2_key(name: String) -> String {
    if let Some(rest) = name.strip_prefix("stem.conv.") {
        return format!("conv1.{rest}");
    }
    if let Some(rest) = name.strip_prefix("head.fc.") {
        return format!("fc.{rest}");
    }
    if let Some(rest) = name.strip_prefix("bn.") {
        return format!("norm.{rest}");
    }
    let Some(rest) = name.strip_prefix("stages.") else {
        return name;
    };
    let Some((stage, rest)) = rest.split_once(".blocks.") else {
        return name;
    };
    let Ok(stage) = stage.parse::<usize>() else {
        return name;
    };
    let mut key = format!("layer{}.{rest}", stage + 1);
    for k in 1..=3 {
        key = key.replace(&format!(".norm{k}."), &format!(".bn{k}."));
    }
    key
}
