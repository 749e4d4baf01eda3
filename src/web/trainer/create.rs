//! Making a `Trainer`: a fresh run, fine-tuning trained weights, or restoring snapshots.

use js_sys::{Array, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use super::{Trainer, train_error};
use crate::io::WeightsFile;
use crate::train::session::{Cadence, EpochMeans, Net};
use crate::train::{self, RunSpec, Session, TrainConfig};
use crate::web::backend::{self, BackendInfo, Preference};
use crate::web::dataset::Dataset;
use crate::web::error::{Kind, js_error};
use crate::web::js::{now_ms, options as parse_options};

/// Options of `Trainer.create` and `Trainer.fineTune`: a run spec and where to run it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CreateOptions {
    #[serde(flatten)]
    spec: RunSpec,
    /// Must equal the dataset's class count if given.
    num_classes: Option<usize>,
    device: Option<String>,
    /// Fine-tuning: classes of the new head (must be the dataset's).
    new_num_classes: Option<usize>,
    /// Fine-tuning: shorthand for `fineTune: { freezeBackbone }`.
    freeze_backbone: Option<bool>,
}

/// wasm32 addresses at most 4 GiB; the module, the dataset and the allocator need the rest.
const WASM_CPU_BUDGET: u64 = 3 << 30;

/// On the CPU fallback a batch too large for wasm32's address space would abort the module:
/// refuse it up front. (WebGPU memory is not knowable from the page; a failed allocation there
/// surfaces as a device error.)
fn check_batch_memory(config: &TrainConfig, backend: &BackendInfo) -> Result<(), JsValue> {
    if backend.backend != "cpu" {
        return Ok(());
    }
    train::check_batch_memory(
        &config.model,
        config.input_size,
        config.batch_size,
        WASM_CPU_BUDGET,
        "WebAssembly's memory allows",
    )
    .map_err(train_error)
}

#[wasm_bindgen]
impl Trainer {
    /// A fresh network (with `compare: true`, a residual net and its plain twin on the same
    /// data order) on `dataset`, seeded, on WebGPU (or the CPU).
    pub async fn create(
        #[wasm_bindgen(unchecked_param_type = "TrainerOptions")] options: JsValue,
        dataset: &Dataset,
    ) -> Result<Trainer, JsValue> {
        let o: CreateOptions = parse_options(options)?;
        let classes = dataset.num_classes();
        if o.num_classes.is_some_and(|n| n != classes) {
            return Err(js_error(
                Kind::Input,
                format!(
                    "numClasses is {} but the dataset has {classes} classes",
                    o.num_classes.unwrap_or_default()
                ),
            ));
        }
        let spec = RunSpec {
            fine_tune: None,
            ..o.spec
        };
        let normalization = dataset.train.channel_statistics(5_000);
        let train_len = dataset.train_size();
        let preference =
            Preference::parse(o.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let models = spec.nets(classes)?;
        let mut trainers = Vec::new();
        for (name, model) in models {
            let config = spec
                .train_config(model, train_len, normalization.clone())
                .map_err(|e| js_error(Kind::Input, e))?;
            check_batch_memory(&config, &backend)?;
            trainers.push((
                name,
                train::Trainer::new(config, &dataset.train, &device).map_err(train_error)?,
            ));
        }
        let session = Self::session(spec, trainers, train_len);
        Ok(Trainer::new(session, dataset, backend))
    }

    /// Starts from trained weights (a `.bpk` from the page or the CLI, or torchvision-layout
    /// safetensors with `arch`), replaces the classifier for the dataset's classes and, with
    /// `freezeBackbone`, trains the classifier only. The optimizer options are the user's
    /// (only the default rate is lower: 0.01).
    #[wasm_bindgen(js_name = fineTune)]
    pub async fn fine_tune(
        weights: Uint8Array,
        #[wasm_bindgen(unchecked_param_type = "FineTuneOptions")] options: JsValue,
        dataset: &Dataset,
    ) -> Result<Trainer, JsValue> {
        let raw: serde_json::Value = parse_options(options.clone())?;
        let o: CreateOptions = parse_options(options)?;
        let file =
            WeightsFile::from_bytes(weights.to_vec(), "weights").map_err(crate::Error::from)?;
        // The architecture: given, or the file's own (any member of the family).
        let source = match (raw.get("arch").and_then(|a| a.as_str()), &file.card) {
            (Some(name), _) => {
                let c = crate::model::network::parse(name).map_err(crate::Error::from)?;
                match o.num_classes {
                    Some(n) => c.with_num_classes(n),
                    None => c,
                }
            }
            (None, Some(card)) => card.config.clone(),
            (None, None) => {
                return Err(js_error(
                    Kind::Arch,
                    "these weights do not name their architecture: pass arch",
                ));
            }
        };
        let classes = o.new_num_classes.unwrap_or(dataset.num_classes());
        if classes != dataset.num_classes() {
            return Err(js_error(
                Kind::Input,
                format!(
                    "newNumClasses is {classes} but the dataset has {}",
                    dataset.num_classes()
                ),
            ));
        }
        let mut spec = RunSpec {
            arch: source.name(),
            compare: false,
            compare_with: Vec::new(),
            ..o.spec
        };
        let mut fine_tune = spec.fine_tune.take().unwrap_or_default();
        fine_tune.freeze_backbone |= o.freeze_backbone.unwrap_or(false);
        spec.fine_tune = Some(fine_tune);
        let preference =
            Preference::parse(o.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let loaded = crate::infer::Classifier::load(file, Some(source.clone()), &device)?;
        let target = source.with_num_classes(classes);
        let model = crate::train::finetune::replace_head(loaded.model().clone(), classes, &device);
        let train_len = dataset.train_size();
        let config = spec
            .train_config(target, train_len, loaded.card().normalization.clone())
            .map_err(|e| js_error(Kind::Input, e))?;
        check_batch_memory(&config, &backend)?;
        let trainer =
            train::Trainer::with_model(config, model, dataset.classes(), train_len, &device)
                .map_err(train_error)?;
        let session = Self::session(spec, vec![("single".into(), trainer)], train_len);
        Ok(Trainer::new(session, dataset, backend))
    }

    /// Continues snapshots on `dataset` (the one they were trained on): the bytes of one
    /// [snapshot](Self::snapshot), or the `[{ name, bytes }]` of [snapshots](Self::snapshots).
    /// A corrupted or crafted snapshot is refused with an error.
    pub async fn restore(
        #[wasm_bindgen(
            unchecked_param_type = "Uint8Array | { name: string; bytes: Uint8Array }[]"
        )]
        snapshots: JsValue,
        dataset: &Dataset,
        #[wasm_bindgen(unchecked_optional_param_type = "\"auto\" | \"webgpu\" | \"cpu\"")]
        device: Option<String>,
    ) -> Result<Trainer, JsValue> {
        let parts: Vec<(String, Vec<u8>)> = if let Some(bytes) = snapshots.dyn_ref::<Uint8Array>() {
            vec![("single".into(), bytes.to_vec())]
        } else if let Some(items) = snapshots.dyn_ref::<Array>() {
            crate::web::js::named_bytes(items, "snapshot")?
        } else {
            return Err(js_error(
                Kind::Input,
                "restore takes a snapshot's bytes or an array of { name, bytes }",
            ));
        };
        if parts.is_empty() {
            return Err(js_error(Kind::Input, "no snapshot given"));
        }
        let preference =
            Preference::parse(device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let mut trainers = Vec::new();
        for (name, bytes) in parts {
            let trainer = train::Trainer::restore(bytes, &device).map_err(train_error)?;
            check_batch_memory(trainer.config(), &backend)?;
            if trainer.classes() != dataset.classes().as_slice() {
                return Err(js_error(
                    Kind::Data,
                    "this snapshot was trained on a dataset with other classes",
                ));
            }
            trainers.push((name, trainer));
        }
        let spec = trainers[0].1.spec().cloned().unwrap_or_default();
        let cadence = Cadence::from_spec(&spec, dataset.train_size());
        let nets = trainers
            .into_iter()
            .map(|(name, trainer)| Net::new(name, trainer, EpochMeans::default()))
            .collect();
        let session = Session::new(spec, nets, cadence, now_ms);
        Ok(Trainer::new(session, dataset, backend))
    }
}
