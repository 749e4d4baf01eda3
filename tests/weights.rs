//! Weights I/O: parity with PyTorch, Burnpack round trips, and refusals that name the problem.
#![cfg(not(target_family = "wasm"))]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use resnet::infer::Classifier;
use resnet::io::npy::NpyF32;
use resnet::io::{ModelCard, Precision, WeightsError, WeightsFile};
use resnet::model::{BlockKind, BlockVariant, DenseNetConfig, ResNetConfig, Stem, arch};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The fixtures' architectures: torchvision's ResNet class with a 16-channel stem.
fn narrow(block: BlockKind) -> ResNetConfig {
    ResNetConfig::new(vec![1, 1, 1, 1], block, Stem::ImageNet, 16).with_num_classes(10)
}

fn logits(classifier: &Classifier, input: &NpyF32) -> Vec<f32> {
    let shape: [usize; 4] = input.shape.clone().try_into().unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(input.data.clone(), shape),
        classifier.device(),
    );
    classifier
        .logits(x)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Loads a PyTorch fixture and compares eval-mode logits with PyTorch's.
fn assert_parity(weights: &str, stem: &str, config: ResNetConfig) {
    let device = Device::flex();
    let file = WeightsFile::open(&fixture(weights)).unwrap();
    let classifier = Classifier::load(file, Some(config.into()), &device).unwrap();
    let input = NpyF32::read(&fixture(&format!("{stem}_input.npy"))).unwrap();
    let expected = NpyF32::read(&fixture(&format!("{stem}_logits.npy"))).unwrap();
    let diff = max_abs_diff(&logits(&classifier, &input), &expected.data);
    println!("{weights}: max |Δlogit| = {diff:e}");
    assert!(diff <= 1e-4, "{weights}: max |Δlogit| = {diff}");
}

#[test]
fn torchvision_basic_block_matches_pytorch() {
    assert_parity("tv_basic.pth", "tv_basic", narrow(BlockKind::Basic));
}

#[test]
fn torchvision_bottleneck_matches_pytorch() {
    assert_parity(
        "tv_bottleneck.pth",
        "tv_bottleneck",
        narrow(BlockKind::Bottleneck),
    );
}

/// torchvision's ResNeXt bottleneck (grouped 3x3) in the narrow fixture net.
#[test]
fn torchvision_resnext_matches_pytorch() {
    let variant = BlockVariant::new().with_groups(4).with_width_per_group(16);
    let config = narrow(BlockKind::Bottleneck).with_variant(Some(variant));
    assert_parity("tv_resnext.pth", "tv_resnext", config);
}

/// timm's SE-ResNeXt: its key names (`se.fc1`, `se.fc2`) and its SE reduction rounding.
#[test]
fn timm_seresnext_matches_pytorch() {
    let variant = BlockVariant::new()
        .with_groups(4)
        .with_width_per_group(16)
        .with_squeeze_excitation(true);
    let config = narrow(BlockKind::Bottleneck).with_variant(Some(variant));
    assert_parity("timm_seresnext.pth", "timm_seresnext", config);
}

/// timm's pre-activation ResNetV2 (bottleneck and basic blocks): its order (BN-ReLU-conv, no
/// ReLU after the sum, projections of the pre-activated input, a final BN-ReLU), its key names
/// and its 1x1-convolution classifier.
#[test]
fn timm_resnetv2_matches_pytorch() {
    let preact = BlockVariant::new().with_preactivation(true);
    for (name, block) in [
        ("timm_resnetv2", BlockKind::Bottleneck),
        ("timm_resnetv2_basic", BlockKind::Basic),
    ] {
        let config = narrow(block).with_variant(Some(preact));
        assert_parity(&format!("{name}.pth"), name, config);
    }
}

/// timm's ResNeSt (resnest50d's settings with cardinality 2, a deep stem of 8): split
/// attention with its grouped softmax, avd, ResNet-D's deep stem and pooled projections
/// (ceil mode at the odd input size), and timm's keys for all of them.
#[test]
fn timm_resnest_matches_pytorch() {
    let variant = BlockVariant::new()
        .with_split_attention(2, true)
        .with_avg_down(true)
        .with_groups(2)
        .with_width_per_group(32);
    let config = narrow(BlockKind::Bottleneck)
        .with_deep_stem(Some(8))
        .with_variant(Some(variant));
    // make_fixtures.py prints the fixture's count.
    assert_eq!(config.stats(65).params, 432_322);
    assert_parity("timm_resnest.pth", "timm_resnest", config);
}

/// torchvision's DenseNet (dense concatenation, transitions, norm5 + ReLU): its key names
/// (`denseblockB.denselayerL`) load into the second module tree.
#[test]
fn torchvision_densenet_matches_pytorch() {
    let device = Device::flex();
    let config = DenseNetConfig::new(vec![2, 2, 2, 2], 8, 16, Stem::ImageNet)
        .with_bn_size(2)
        .with_num_classes(10);
    let file = WeightsFile::open(&fixture("tv_densenet.pth")).unwrap();
    let model = file.apply_densenet(config.init(&device), &config).unwrap();
    let input = NpyF32::read(&fixture("tv_densenet_input.npy")).unwrap();
    let expected = NpyF32::read(&fixture("tv_densenet_logits.npy")).unwrap();
    let shape: [usize; 4] = input.shape.clone().try_into().unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(input.data, shape), &device);
    let got = model.forward(x).into_data().try_into_vec::<f32>().unwrap();
    let diff = max_abs_diff(&got, &expected.data);
    println!("tv_densenet.pth: max |Δlogit| = {diff:e}");
    assert!(diff <= 1e-4, "max |Δlogit| = {diff}");
    // A DenseNet file named as another DenseNet lists what differs, by this crate's names.
    let wider = DenseNetConfig {
        growth_rate: 12,
        ..config.clone()
    };
    let file = WeightsFile::open(&fixture("tv_densenet.pth")).unwrap();
    let err = file
        .apply_densenet(wider.init(&device), &wider)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "features.denseblock1.0.conv2.weight (model [12, 24, 3, 3], file [8, 16, 3, 3])"
        ),
        "{err}"
    );
}

/// A DenseNet classifies, saves with its card and reloads through the same classifier as a
/// ResNet: the logits of the PyTorch fixture, a Burnpack file whose tensors carry DenseNet's
/// own names (no enum variant in the path) and a card that names it, bit-exact after the
/// round trip; a ResNet named for that file is refused by its card.
#[test]
fn densenet_classifies_and_round_trips_through_the_classifier() {
    use resnet::model::NetConfig;

    let device = Device::flex();
    let config: NetConfig = DenseNetConfig::new(vec![2, 2, 2, 2], 8, 16, Stem::ImageNet)
        .with_bn_size(2)
        .with_num_classes(10)
        .into();
    let file = WeightsFile::open(&fixture("tv_densenet.pth")).unwrap();
    let classifier = Classifier::load(file, Some(config.clone()), &device).unwrap();
    let input = NpyF32::read(&fixture("tv_densenet_input.npy")).unwrap();
    let expected = NpyF32::read(&fixture("tv_densenet_logits.npy")).unwrap();
    let got = logits(&classifier, &input);
    assert!(max_abs_diff(&got, &expected.data) <= 1e-4);

    let bytes =
        resnet::io::to_bytes(classifier.model(), classifier.card(), Precision::F32).unwrap();
    let file = WeightsFile::from_bytes(bytes.clone(), "densenet.bpk").unwrap();
    let keys = file.keys();
    assert!(
        keys.contains(&"features.denseblock1.0.conv1.weight".to_string())
            && keys.iter().all(|k| !k.starts_with("DenseNet")),
        "{keys:?}"
    );
    assert_eq!(file.card.as_ref().unwrap().config, config);
    let reloaded = Classifier::load(file, None, &device).unwrap();
    assert_eq!(logits(&reloaded, &input), got);

    let file = WeightsFile::from_bytes(bytes, "densenet.bpk").unwrap();
    let err = Classifier::load(file, Some(arch::parse("resnet18").unwrap().into()), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("the file holds densenet"), "{err}");
}

#[test]
fn cifar_resnet20_option_a_matches_pytorch_from_pth_and_safetensors() {
    assert_parity("cifar20.pth", "cifar20", arch::parse("resnet20").unwrap());
    assert_parity(
        "cifar20.safetensors",
        "cifar20",
        arch::parse("resnet20").unwrap(),
    );
}

#[test]
fn burnpack_round_trip_is_bit_exact_and_carries_the_card() {
    let device = Device::flex();
    let config = arch::parse("resnet20").unwrap();
    let file = WeightsFile::open(&fixture("cifar20.pth")).unwrap();
    let original = Classifier::load(file, Some(config.clone().into()), &device).unwrap();
    let card = ModelCard {
        labels: Some((0..10).map(|i| format!("label {i}")).collect()),
        description: Some("round trip".into()),
        ..original.card().clone()
    };
    let path = scratch("roundtrip.bpk");
    resnet::io::save(original.model(), &card, &path, Precision::F32).unwrap();

    // No architecture given: the file's card says which.
    let file = WeightsFile::open(&path).unwrap();
    assert_eq!(file.card.as_ref(), Some(&card));
    let loaded = Classifier::load(file, None, &device).unwrap();
    assert_eq!(loaded.labels()[3], "label 3");
    let input = NpyF32::read(&fixture("cifar20_input.npy")).unwrap();
    assert_eq!(
        logits(&loaded, &input),
        logits(&original, &input),
        "bit-exact logits"
    );
    // Bytes from the async writer (the browser's path) hold the same tensors.
    let bytes = pollster::block_on(resnet::io::to_bytes_async(
        loaded.model(),
        &card,
        Precision::F32,
    ))
    .unwrap();
    let reloaded = Classifier::load(
        WeightsFile::from_bytes(bytes, "async.bpk").unwrap(),
        None,
        &device,
    )
    .unwrap();
    assert_eq!(logits(&reloaded, &input), logits(&original, &input));
}

#[test]
fn f16_burnpack_is_half_the_size_and_close() {
    let device = Device::flex();
    let config = arch::parse("resnet20").unwrap();
    let file = WeightsFile::open(&fixture("cifar20.pth")).unwrap();
    let original = Classifier::load(file, Some(config.into()), &device).unwrap();
    let card = original.card().clone();
    let f32_bytes = resnet::io::to_bytes(original.model(), &card, Precision::F32).unwrap();
    let f16_bytes = resnet::io::to_bytes(original.model(), &card, Precision::F16).unwrap();
    assert!(
        f16_bytes.len() < f32_bytes.len() * 55 / 100,
        "{} vs {}",
        f16_bytes.len(),
        f32_bytes.len()
    );
    let async_f16 = pollster::block_on(resnet::io::to_bytes_async(
        original.model(),
        &card,
        Precision::F16,
    ))
    .unwrap();
    assert_eq!(async_f16.len(), f16_bytes.len());
    let half = Classifier::load(
        WeightsFile::from_bytes(f16_bytes, "f16.bpk").unwrap(),
        None,
        &device,
    )
    .unwrap();
    let input = NpyF32::read(&fixture("cifar20_input.npy")).unwrap();
    let diff = max_abs_diff(&logits(&half, &input), &logits(&original, &input));
    assert!(diff > 0.0 && diff < 0.05, "f16 logits differ by {diff}");
}

fn mismatch(weights: &str, config: ResNetConfig) -> String {
    let file = WeightsFile::open(&fixture(weights)).unwrap();
    match Classifier::load(file, Some(config.into()), &Device::flex()) {
        Err(resnet::Error::Weights(err @ WeightsError::Mismatch { .. })) => err.to_string(),
        Err(other) => panic!("expected a mismatch, got {other}"),
        Ok(_) => panic!("{weights} loaded into the wrong architecture"),
    }
}

#[test]
fn weights_for_another_architecture_are_refused_with_the_keys_that_differ() {
    // Same depth, other width: every shape differs.
    let msg = mismatch("tv_basic.pth", arch::parse("resnet18").unwrap());
    assert!(
        msg.contains("tv_basic.pth: weights do not fit resnet18 (1000 classes)"),
        "{msg}"
    );
    assert!(
        msg.contains("conv1.weight (model [64, 3, 7, 7], file [16, 3, 7, 7])"),
        "{msg}"
    );
    assert!(
        msg.contains("62 shape/dtype/read errors, 40 missing tensors, 0 unexpected"),
        "{msg}"
    );
    assert!(
        msg.contains("missing from the file: layer1.1.bn1.beta"),
        "{msg}"
    );

    // A deeper net: the extra blocks are missing, the shapes that exist agree.
    let msg = mismatch("cifar20.pth", arch::parse("resnet32").unwrap());
    assert!(msg.contains("0 shape/dtype/read errors"), "{msg}");
    assert!(
        msg.contains("60 missing tensors") && msg.contains("layer1.3.bn1.beta"),
        "{msg}"
    );

    // Another class count: only the classifier differs.
    let msg = mismatch(
        "cifar20.pth",
        arch::parse("resnet20").unwrap().with_num_classes(100),
    );
    assert!(
        msg.contains("fc.weight (model [64, 100], file [64, 10])"),
        "{msg}"
    );
    assert!(
        msg.contains("2 shape/dtype/read errors, 0 missing tensors, 0 unexpected"),
        "{msg}"
    );

    // Bottleneck weights into basic blocks: conv3/bn3 are unexpected.
    let msg = mismatch("tv_bottleneck.pth", narrow(BlockKind::Basic));
    assert!(
        msg.contains("in the file but not in the model: layer1.0.bn3"),
        "{msg}"
    );

    // timm's SE-ResNeXt named as the torchvision ResNeXt: its SE layers are listed by name.
    let resnext = BlockVariant::new().with_groups(4).with_width_per_group(16);
    let msg = mismatch(
        "timm_seresnext.pth",
        narrow(BlockKind::Bottleneck).with_variant(Some(resnext)),
    );
    assert!(
        msg.contains("0 missing tensors") && msg.contains("layer1.0.se.fc1.weight"),
        "{msg}"
    );
    // ... and the reverse: a torchvision ResNeXt named as an SE net misses them, and a plain
    // ResNet named for grouped weights gets the 3x3's shape wrong.
    let msg = mismatch(
        "tv_resnext.pth",
        narrow(BlockKind::Bottleneck).with_variant(Some(resnext.with_squeeze_excitation(true))),
    );
    assert!(
        msg.contains("missing from the file: layer1.0.se.fc1.bias"),
        "{msg}"
    );
    // timm's pre-activation net named as the 2015 one: the stem and projection BNs it
    // lacks, its final norm, and the BNs that sit before, not after, each convolution.
    let msg = mismatch("timm_resnetv2.pth", narrow(BlockKind::Bottleneck));
    assert!(
        msg.contains("20 missing tensors, 4 unexpected tensors")
            && msg.contains("missing from the file: bn1.beta")
            && msg.contains("in the file but not in the model: norm.bias")
            && msg.contains("layer1.0.bn3.gamma (model [64], file [16])"),
        "{msg}"
    );
    let msg = mismatch("tv_resnext.pth", narrow(BlockKind::Bottleneck));
    assert!(
        msg.contains("layer1.0.conv2.weight (model [16, 16, 3, 3], file [16, 4, 3, 3])"),
        "{msg}"
    );
}

#[test]
fn a_burnpack_card_for_another_model_is_refused_before_loading() {
    let device = Device::flex();
    let config = arch::parse("resnet20").unwrap();
    let model = config.init(&device);
    let path = scratch("r20.bpk");
    resnet::io::save(
        &model,
        &ModelCard::for_config(config),
        &path,
        Precision::F32,
    )
    .unwrap();
    let file = WeightsFile::open(&path).unwrap();
    let err = Classifier::load(file, Some(arch::parse("resnet56").unwrap().into()), &device)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains(
            "weights do not fit resnet56 (10 classes): the file holds resnet20 (10 classes)"
        ),
        "{err}"
    );
}

#[test]
fn corrupt_truncated_and_foreign_files_are_refused() {
    let device = Device::flex();
    let config = arch::parse("resnet20").unwrap();
    let good = resnet::io::to_bytes(
        &config.init(&device),
        &ModelCard::for_config(config.clone()),
        Precision::F32,
    )
    .unwrap();

    for (name, bytes) in [
        ("truncated.bpk", good[..good.len() / 2].to_vec()),
        ("header-only.bpk", good[..64].to_vec()),
    ] {
        let path = scratch(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = match WeightsFile::open(&path) {
            Err(err) => err.to_string(),
            Ok(file) => Classifier::load(file, Some(config.clone().into()), &device)
                .err()
                .expect("must fail")
                .to_string(),
        };
        assert!(err.contains(name) && err.contains("Burnpack"), "{err}");
    }

    let pth = std::fs::read(fixture("cifar20.pth")).unwrap();
    let path = scratch("truncated.pth");
    std::fs::write(&path, &pth[..pth.len() / 3]).unwrap();
    let err = match WeightsFile::open(&path) {
        Err(err) => err.to_string(),
        Ok(file) => Classifier::load(file, Some(config.clone().into()), &device)
            .err()
            .expect("must fail")
            .to_string(),
    };
    assert!(err.contains("truncated.pth"), "{err}");

    for (name, bytes) in [
        ("empty.bpk", Vec::new()),
        ("text.bpk", b"hello world, not weights".to_vec()),
    ] {
        let path = scratch(name);
        std::fs::write(&path, bytes).unwrap();
        let err = WeightsFile::open(&path).err().unwrap();
        assert!(matches!(err, WeightsError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains(name));
    }

    let err = WeightsFile::open(&scratch("does-not-exist.bpk"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("does-not-exist.bpk"), "{err}");
}

/// A `.pth` whose pickle would call `os.system` under Python's unpickler
/// (tests/fixtures/make_malicious_pth.py) is refused, naming the global (the reader only
/// interprets pickles, it never runs them). The real PyTorch fixtures still load.
#[test]
fn a_pickle_naming_os_system_is_refused_by_name() {
    let err = WeightsFile::open(&fixture("malicious_os_system.pth"))
        .err()
        .expect("a pickle calling os.system must be refused");
    assert!(matches!(err, WeightsError::Unsafe { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("malicious_os_system.pth") && message.contains("`posix.system`"),
        "{message}"
    );
    for name in ["cifar20.pth", "tv_basic.pth", "tv_bottleneck.pth"] {
        assert!(WeightsFile::open(&fixture(name)).is_ok(), "{name}");
    }
}

/// make_fixtures.py's `formula`: a tensor's values from its name, in f64 then rounded to f32.
fn formula(key: &str, shape: &[usize], batch_norm: bool) -> Vec<f32> {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let phase = (hash % 10007) as f64 * 1e-3;
    let leaf = key.rsplit('.').next().unwrap();
    let fan_in: usize = shape[1..].iter().product();
    let (offset, scale) = match leaf {
        "running_var" => (1.0, 0.5),
        "running_mean" => (0.0, 0.3),
        "weight" if batch_norm => (1.0, 0.25),
        "bias" if batch_norm => (0.0, 0.2),
        "weight" if shape.len() == 4 => (0.0, 2.0 / (fan_in as f64).sqrt()),
        "weight" => (0.0, 1.0 / (fan_in as f64).sqrt()),
        _ => (0.0, 0.1),
    };
    let n: usize = shape.iter().product();
    (0..n)
        .map(|j| (offset + scale * (phase + j as f64 * 0.618034).sin()) as f32)
        .collect()
}

/// timm's full inception_resnet_v2 (55.8M parameters; 224 MB of weights are not committed:
/// every tensor follows a formula of its name that make_fixtures.py and [formula] share): its
/// names (single-unit branches, `mixed_5b.branch3.1` after the pool), its scaled residuals,
/// BN ε = 0.001, 1x7 / 7x1 kernels and valid windows at an odd 99x99 input, against timm's
/// logits.
#[test]
fn timm_inception_resnet_v2_matches_pytorch() {
    use resnet::model::InceptionResNetConfig;

    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("timm_inception_resnet_v2_keys.json")).unwrap(),
    )
    .unwrap();
    let keys: Vec<(String, Vec<usize>)> = serde_json::from_value(spec["keys"].clone()).unwrap();
    let classifier_scale = spec["classifier_scale"].as_f64().unwrap() as f32;
    let names: std::collections::HashSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    // A safetensors file in memory: header, then the tensors back to back.
    let (mut header, mut data) = (serde_json::Map::new(), Vec::<u8>::new());
    for (key, shape) in &keys {
        let prefix = key.rsplit_once('.').unwrap().0;
        let batch_norm = names.contains(format!("{prefix}.running_mean").as_str());
        let mut values = formula(key, shape, batch_norm);
        if key.starts_with("classif.") {
            values.iter_mut().for_each(|v| *v *= classifier_scale);
        }
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            key.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);

    let device = Device::flex();
    let config = InceptionResNetConfig::new();
    assert_eq!(config.stats(299).params, 55_843_464);
    let file = WeightsFile::from_bytes(bytes, "inception_resnet_v2.safetensors").unwrap();
    let net = file
        .apply_inception_resnet(config.init(&device), &config)
        .unwrap();
    let input = NpyF32::read(&fixture("timm_inception_resnet_v2_input.npy")).unwrap();
    let expected = NpyF32::read(&fixture("timm_inception_resnet_v2_logits.npy")).unwrap();
    let shape: [usize; 4] = input.shape.clone().try_into().unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(input.data.clone(), shape), &device);
    let got = net.forward(x).into_data().try_into_vec::<f32>().unwrap();
    let diff = max_abs_diff(&got, &expected.data);
    println!("inception_resnet_v2: max |Δlogit| = {diff:e}");
    assert!(diff <= 1e-4, "max |Δlogit| = {diff}");
}
