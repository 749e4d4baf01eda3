//! The fuzz targets: one function per thing a user can hand the crate, each calling the same
//! public functions the CLI, the page and the npm package call on those bytes. Shared by
//! cargo-fuzz (`fuzz/fuzz_targets/*.rs`, run by `scripts/fuzz.sh`) and by the stable smoke in
//! `tests/fuzz.rs` that CI runs; neither may see a panic, whatever the input.
//!
//! A target returns normally on any error: what it checks is that no input panics, hangs or
//! asks for unbounded memory (cargo-fuzz runs with a malloc limit, see scripts/fuzz.sh).

#![allow(dead_code)] // each fuzz target binary uses one function

use std::io::Write;

use burn::tensor::Device;
use resnet::data::{cifar, image, views};
use resnet::infer::Classifier;
use resnet::io::{ModelCard, Normalization, WeightsFile, npy::NpyF32};
use resnet::model::arch;
use resnet::train::session::HyperparameterChange;
use resnet::train::{Cadence, RunSpec, Trainer, check_batch_memory};

/// A fuzz target: it gets the raw bytes, and must return whatever they are.
pub type Target = fn(&[u8]);

/// Every target: its name (of `fuzz/fuzz_targets/NAME.rs`), its function, and the seeds it
/// starts from (`fuzz/seeds/SEEDS/`). The `read_*` and `decode` targets stop after parsing,
/// so that the parsers get millions of executions; the others go on to build what a user
/// gets (a model, a trainer, test views), a thousand times slower.
pub const TARGETS: &[(&str, Target, &str)] = &[
    ("read_weights", read_weights, "weights"),
    ("weights", weights, "weights"),
    ("read_pth", read_pth, "pth"),
    ("pth", pth, "pth"),
    ("npy", npy, "npy"),
    ("cifar", cifar_binary, "cifar"),
    ("decode", decode, "image"),
    ("image", image_views, "image"),
    ("snapshot", snapshot, "snapshot"),
    ("options", options, "options"),
];

/// Burnpack and safetensors bytes, parsed (tensors listed, model card checked) and no more.
pub fn read_weights(data: &[u8]) {
    let _ = WeightsFile::from_bytes(data.to_vec(), "fuzz.bpk");
}

/// Burnpack (`.bpk`, with or without a model card) and safetensors bytes, as
/// `Classifier.load` in the browser and `resnet classify/eval/logits` natively read them;
/// a file that parses is loaded into the model its card names (or a ResNet-20 without one).
pub fn weights(data: &[u8]) {
    let Ok(file) = WeightsFile::from_bytes(data.to_vec(), "fuzz.bpk") else {
        return;
    };
    let config = match file.card {
        Some(_) => None,
        None => arch::parse("resnet20").ok().map(Into::into),
    };
    let _ = Classifier::load(file, config, &Device::flex());
}

/// A PyTorch `.pth` (zip or legacy pickle) as `resnet import` reads it, from a file: parsed,
/// its pickle checked for foreign globals, its tensors read.
pub fn read_pth(data: &[u8]) {
    let _ = open_pth(data);
}

/// [read_pth], then the tensors applied to a ResNet-20 (mapped, checked, refused or loaded).
pub fn pth(data: &[u8]) {
    if let Some(file) = open_pth(data) {
        let config = arch::parse("resnet20").unwrap();
        let _ = file.apply(config.init(&Device::flex()), &config);
    }
}

fn open_pth(data: &[u8]) -> Option<WeightsFile> {
    let path = std::env::temp_dir().join(format!("resnet-fuzz-{}.pth", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(data))
        .ok()?;
    WeightsFile::open(&path).ok()
}

/// `.npy` arrays (`resnet logits` inputs and outputs, the parity fixtures).
pub fn npy(data: &[u8]) {
    let _ = NpyF32::from_bytes(data);
}

/// CIFAR-10 and CIFAR-100 binary batches (`Dataset.cifar`, `--data cifar10:DIR`).
pub fn cifar_binary(data: &[u8]) {
    for variant in [cifar::Variant::Cifar10, cifar::Variant::Cifar100] {
        let _ = cifar::parse(data, variant, "fuzz.bin");
    }
}

/// An image in any accepted format, decoded (and no more).
pub fn decode(data: &[u8]) {
    let _ = image::decode(data);
}

/// An image in any accepted format, decoded (`classifier.classify`, `Dataset.fromImages`,
/// `resnet classify`, image folders), shrunk to CIFAR size and cut into the test views.
pub fn image_views(data: &[u8]) {
    let Ok(picture) = image::decode(data) else {
        return;
    };
    let _ = image::to_cifar_size(&picture);
    let cifar = ModelCard::for_config(arch::parse("resnet20").unwrap());
    for mode in [
        views::TestView::Center,
        views::TestView::TenCrop,
        views::TestView::MultiScale,
    ] {
        let _ = views::views(&picture, &cifar, mode);
    }
    let imagenet = ModelCard::for_config(arch::parse("resnet18").unwrap());
    let _ = views::views(&picture, &imagenet, views::TestView::Center);
}

/// Training snapshots (the page's IndexedDB records, `Trainer.restore`, a run's checkpoint).
pub fn snapshot(data: &[u8]) {
    let _ = Trainer::restore(data.to_vec(), &Device::flex());
}

/// The JSON options of the npm API and the CLI's `--spec`: a run spec (`Trainer.create`),
/// a hyper-parameter change (`trainer.setHyperparameters`) and a `--data` string, taken
/// through every check the page and the CLI make before a run starts.
pub fn options(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = resnet::data::spec::DataSpec::parse(text).map(|d| d.describe());
    let train_len = 1000;
    let config = RunSpec::from_json(text).and_then(|spec| {
        let model = spec.model(10).map_err(|e| e.to_string())?;
        let config = spec.train_config(model, train_len, Normalization::CIFAR10)?;
        check_batch_memory(
            &config.model,
            config.input_size,
            config.batch_size,
            3 << 30,
            "the fuzz budget",
        )
        .map_err(|e| e.to_string())?;
        let cadence = Cadence::from_spec(&spec, train_len);
        for step in [0, 1, cadence.iterations / 2, cadence.iterations] {
            let _ = config.lr.lr(step);
        }
        Ok(config)
    });
    let config = config.unwrap_or_else(|_| {
        let spec = RunSpec::default();
        spec.train_config(spec.model(10).unwrap(), train_len, Normalization::CIFAR10)
            .unwrap()
    });
    if let Ok(change) = serde_json::from_str::<HyperparameterChange>(text) {
        let _ = change.clone().merged_over(Some(change.clone()));
        let _ = change.check(&config);
    }
}
