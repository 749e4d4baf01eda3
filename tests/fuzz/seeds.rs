//! Small valid inputs for every fuzz target, written under fuzz/seeds/TARGET/seed-*: the
//! starting points cargo-fuzz mutates and the CI smoke replays. Each is as small as the
//! format allows, so that the fuzzer spends its time on structure rather than bulk.

use std::io::Cursor;
use std::path::Path;

use burn::tensor::Device;
use resnet::data::cifar::{self, Variant};
use resnet::data::dataset::Dataset;
use resnet::data::image_set::ImageSet;
use resnet::data::synthetic::Shapes;
use resnet::io::npy::NpyF32;
use resnet::io::{ModelCard, Normalization, Precision, to_bytes};
use resnet::model::arch;
use resnet::train::{RunSpec, Trainer};

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// A CIFAR ResNet-8 two channels wide with three classes: a real, loadable model of ~500
/// parameters.
fn tiny_model() -> resnet::model::ResNetConfig {
    let mut config = arch::parse("resnet8").unwrap().with_num_classes(3);
    config.base_width = 2;
    config
}

fn safetensors(tensors: &[(&str, Vec<usize>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        let start = data.len();
        data.extend((0..n).flat_map(|i| (i as f32 * 0.01).to_le_bytes()));
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

pub fn write_all(dir: &Path) {
    let device = Device::flex();

    // weights: a real model with its card, in f32 and f16; safetensors in torchvision names.
    let config = tiny_model();
    let model = config.init(&device);
    let card = ModelCard::for_config(config.clone());
    put(
        dir,
        "weights",
        "tiny-f32.bpk",
        &to_bytes(&model, &card, Precision::F32).unwrap(),
    );
    put(
        dir,
        "weights",
        "tiny-f16.bpk",
        &to_bytes(&model, &card, Precision::F16).unwrap(),
    );
    put(
        dir,
        "weights",
        "head.safetensors",
        &safetensors(&[
            ("fc.weight", vec![3, 8]),
            ("fc.bias", vec![3]),
            ("bn1.num_batches_tracked", vec![]),
        ]),
    );

    // snapshot: a fresh trainer, and one after a step (momentum buffers present).
    let spec = RunSpec {
        batch_size: 2,
        ..RunSpec::default()
    };
    let train = Dataset::Shapes(Shapes { seed: 1, len: 8 });
    let classes = train.classes().len();
    let model = tiny_model().with_num_classes(classes);
    let train_config = spec.train_config(model, 8, Normalization::CIFAR10).unwrap();
    let mut trainer = Trainer::new(train_config, &train, &device).unwrap();
    put(
        dir,
        "snapshot",
        "fresh.bpk",
        &pollster::block_on(trainer.snapshot()).unwrap(),
    );
    pollster::block_on(trainer.step(&train)).unwrap();
    put(
        dir,
        "snapshot",
        "stepped.bpk",
        &pollster::block_on(trainer.snapshot()).unwrap(),
    );

    // image: one Shapes picture in every accepted format, and odd sizes.
    let shapes = Shapes { seed: 1, len: 2 };
    let picture = image::RgbImage::from_raw(32, 32, chw_to_hwc(&shapes.render(0))).unwrap();
    let picture = image::DynamicImage::ImageRgb8(picture);
    for (format, ext) in [
        (image::ImageFormat::Png, "png"),
        (image::ImageFormat::Jpeg, "jpg"),
        (image::ImageFormat::Gif, "gif"),
        (image::ImageFormat::WebP, "webp"),
        (image::ImageFormat::Bmp, "bmp"),
    ] {
        let mut bytes = Cursor::new(Vec::new());
        picture.write_to(&mut bytes, format).unwrap();
        put(dir, "image", &format!("shape.{ext}"), bytes.get_ref());
    }
    let mut bytes = Cursor::new(Vec::new());
    picture
        .crop_imm(3, 5, 7, 3)
        .into_luma8()
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    put(dir, "image", "gray-7x3.png", bytes.get_ref());

    // cifar: two records of each layout.
    let set = ImageSet {
        labels: vec![3, 7],
        pixels: (0..2).flat_map(|i| shapes.render(i)).collect(),
        classes: (0..10).map(|i| format!("c{i}")).collect(),
    };
    put(
        dir,
        "cifar",
        "cifar10.bin",
        &cifar::encode(&set, Variant::Cifar10),
    );
    put(
        dir,
        "cifar",
        "cifar100.bin",
        &cifar::encode(&set, Variant::Cifar100),
    );

    // npy: a matrix, an NCHW batch, a scalar.
    for (name, shape) in [
        ("matrix", vec![2, 3]),
        ("nchw", vec![1, 3, 2, 2]),
        ("scalar", vec![]),
    ] {
        let n: usize = shape.iter().product();
        let array = NpyF32 {
            shape,
            data: (0..n).map(|i| i as f32 - 1.5).collect(),
        };
        put(dir, "npy", &format!("{name}.npy"), &array.to_bytes());
    }

    // options: run specs as the page and `--spec` give them, a hyper-parameter change, data.
    let full = serde_json::to_string_pretty(&RunSpec::default()).unwrap();
    for (name, text) in [
        ("default.json", full.as_str()),
        ("empty.json", "{}"),
        (
            "custom.json",
            r#"{"arch":"resnet20","plain":true,"batchSize":64,"iterations":500,"recipe":"custom","optimizer":{"lr":0.05,"momentum":0.9,"nesterov":true},"schedule":{"kind":"cosine","warmup":50},"labelSmoothing":0.1,"data":{"kind":"shapes","trainSize":200,"testSize":50}}"#,
        ),
        (
            "step.json",
            r#"{"spec":{"arch":"resnet8","schedule":{"kind":"step","every":100,"gamma":0.5}}}"#,
        ),
        (
            "change.json",
            r#"{"lr":0.01,"momentum":0.8,"weightDecay":0.0005,"nesterov":false}"#,
        ),
        ("data.txt", "shapes:100:20"),
        ("cifar.txt", "cifar10:/data/cifar"),
    ] {
        put(dir, "options", name, text.as_bytes());
    }
}

/// Shapes renders planar CHW; image wants interleaved HWC.
fn chw_to_hwc(chw: &[u8]) -> Vec<u8> {
    let plane = chw.len() / 3;
    (0..plane)
        .flat_map(|p| [chw[p], chw[plane + p], chw[2 * plane + p]])
        .collect()
}
