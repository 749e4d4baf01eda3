//! The `resnet` binary, run as a user runs it.
#![cfg(not(target_family = "wasm"))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use resnet::io::npy::NpyF32;

fn resnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnet"))
        .args(args)
        .output()
        .expect("the resnet binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = resnet(args);
    assert!(
        out.status.success(),
        "resnet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A refusal: non-zero exit, one `error:` line naming the problem, no panic.
fn refused(args: &[&str]) -> String {
    let out = resnet(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "resnet {args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `info --json` reports what `model::stats` computes (whose unit test holds the whole table
/// of torchvision's and the paper's counts): a basic and a bottleneck ImageNet net with
/// torchvision's parameter counts and GFLOPS (multiply-adds), and two CIFAR nets.
#[test]
fn info_reports_exact_parameter_counts_as_json() {
    for (arch, params, gmacs) in [
        ("resnet18", 11_689_512u64, Some(1.81)),
        ("resnet50", 25_557_032, Some(4.09)),
        ("resnet20", 269_722, None),
        ("resnet110", 1_727_962, None),
    ] {
        let json: serde_json::Value =
            serde_json::from_str(&ok(&["info", "--arch", arch, "--json"])).unwrap();
        assert_eq!(json["arch"], arch);
        assert_eq!(json["params"], params, "{arch}");
        let macs = json["macs"].as_u64().unwrap() as f64;
        if let Some(gmacs) = gmacs {
            assert_eq!((macs / 1e7).round() / 100.0, gmacs, "{arch}: {macs}");
        }
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "info",
        "--arch",
        "resnet20",
        "--shortcut",
        "B",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["params"], 269_722 + 2_752);
    let text = ok(&[
        "info",
        "--arch",
        "resnet50",
        "--classes",
        "10",
        "--size",
        "160",
    ]);
    assert!(text.contains("resnet50: 23,528,522 parameters"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--arch", "resnext101_32x8d", "--json"])).unwrap();
    assert_eq!(
        (&json["arch"], &json["params"], &json["groups"]),
        (&"resnext101_32x8d".into(), &88_791_336.into(), &32.into())
    );
    let text = ok(&["info", "--arch", "seresnext50_32x4d"]);
    assert!(
        text.contains("seresnext50_32x4d: 27,559,896 parameters")
            && text.contains("3x3 in 32 groups of 4 channels")
            && text.contains("squeeze-excitation"),
        "{text}"
    );
    let text = ok(&["info", "--arch", "densenet121"]);
    assert!(
        text.contains("densenet121: 7,978,856 parameters, 2.8") && text.contains("growth rate 32"),
        "{text}"
    );
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let err = refused(&[
        "import",
        &format!("{fixtures}tv_densenet.pth"),
        "--arch",
        "densenet121",
        "--out",
        &std::env::temp_dir()
            .join("densenet.bpk")
            .display()
            .to_string(),
    ]);
    // import takes DenseNets; this fixture is a narrow one, so densenet121's shapes differ.
    assert!(
        err.contains("densenet121 (1000 classes)")
            && err.contains("features.conv0.weight (model [64, 3, 7, 7], file [16, 3, 7, 7])"),
        "{err}"
    );
    let text = ok(&["info", "--arch", "wrn16_4"]);
    assert!(
        text.contains("wrn16_4: 2,748,890 parameters")
            && text.contains("14 weighted layers")
            && text.contains("16-channel stem under 64-plane first stage")
            && text.contains("named by Wide ResNet's depth 6n + 4"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--arch", "wrn28_10", "--json"])).unwrap();
    assert_eq!(
        (&json["params"], &json["preactivation"], &json["stem_width"]),
        (&36_479_194.into(), &true.into(), &16.into())
    );
    let text = ok(&["info", "--arch", "inception_resnet_v2"]);
    assert!(
        text.contains("inception_resnet_v2: 55,843,464 parameters, 13.1")
            && text.contains("at 299x299"),
        "{text}"
    );
    let err = refused(&["info", "--arch", "inception_resnet_v2", "--size", "64"]);
    assert!(err.contains("at least 75x75"), "{err}");
    let err = refused(&[
        "import",
        &format!("{fixtures}tv_basic.pth"),
        "--arch",
        "inception_resnet_v2",
        "--out",
        &std::env::temp_dir().join("irv2.bpk").display().to_string(),
    ]);
    assert!(err.contains("inception_resnet_v2 (1000 classes)"), "{err}");
    let out = std::env::temp_dir().join("dense-run").display().to_string();
    let err = refused(&[
        "train",
        "--arch",
        "inception_resnet_v2",
        "--data",
        "synthetic",
        "--out",
        &out,
    ]);
    assert!(
        err.contains("inception_resnet_v2 needs images of at least 75x75")
            && err.contains("--data imagenet:DIR"),
        "{err}"
    );
    // bench takes every tree; a DenseNet runs with BN as layers (only ResNets fold it).
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "bench",
        "--arch",
        "densenet_bc16_4",
        "--runs",
        "1",
        "--warmup",
        "0",
    ]))
    .unwrap();
    assert_eq!(
        (&json["arch"], &json["bn"], &json["size"]),
        (&"densenet_bc16_4".into(), &"separate".into(), &32.into())
    );
    let text = ok(&["info", "--arch", "resnest50d"]);
    assert!(
        text.contains("resnest50d: 27,483,240 parameters")
            && text.contains("split attention of radix 2")
            && text.contains("deep stem of 3x3 convolutions (32, 32")
            && text.contains("average-pooled projections"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--arch", "resnet50d", "--json"])).unwrap();
    assert_eq!(
        (
            &json["params"],
            &json["deep_stem"],
            &json["avg_down"],
            &json["radix"]
        ),
        (&25_576_264.into(), &32.into(), &true.into(), &0.into())
    );
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let err = refused(&["info", "--arch", "resnet19"]);
    assert!(err.contains("unknown architecture 'resnet19'"), "{err}");
    // The refusal lists the whole family.
    assert!(
        err.contains("resnext50_32x4d") && err.contains("seresnet"),
        "{err}"
    );
    let err = refused(&["info", "--arch", "resnet20", "--classes", "0"]);
    assert!(err.contains("num_classes must be at least 1"), "{err}");
    // A misspelt --arch is named before the weights file is read.
    let err = refused(&[
        "eval",
        "--arch",
        "resnet19",
        "--weights",
        "/nonexistent/weights.pth",
        "--data",
        "shapes",
    ]);
    assert!(err.contains("unknown architecture 'resnet19'"), "{err}");
}

#[test]
fn logits_agree_with_pytorch_through_npy_files() {
    let out = scratch("cifar20_logits.npy");
    ok(&[
        "logits",
        "--arch",
        "resnet20",
        "--weights",
        &fixture("cifar20.pth"),
        "--input",
        &fixture("cifar20_input.npy"),
        "--output",
        out.to_str().unwrap(),
    ]);
    let got = NpyF32::read(&out).unwrap();
    let expected = NpyF32::read(Path::new(&fixture("cifar20_logits.npy"))).unwrap();
    assert_eq!(got.shape, vec![4, 10]);
    let diff = got
        .data
        .iter()
        .zip(&expected.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-4, "max |Δlogit| = {diff}");
}

#[test]
fn logits_refuse_wrong_npy_dtype_and_shape() {
    let weights = fixture("cifar20.pth");
    let out = scratch("never.npy");
    let out = out.to_str().unwrap();
    let logits_of = |input: &str| {
        refused(&[
            "logits",
            "--arch",
            "resnet20",
            "--weights",
            &weights,
            "--input",
            input,
            "--output",
            out,
        ])
    };
    // The logits fixture is [4, 10]: not an image batch.
    let err = logits_of(&fixture("cifar20_logits.npy"));
    assert!(
        err.contains("cifar20_logits.npy: expected a 4-D [N, 3, H, W] array"),
        "{err}"
    );
    // float64 data.
    let f8 = scratch("f8.npy");
    let mut bytes = NpyF32 {
        shape: vec![1, 3, 2, 2],
        data: vec![0.0; 12],
    }
    .to_bytes();
    let at = bytes.windows(3).position(|w| w == b"<f4").unwrap();
    bytes[at..at + 3].copy_from_slice(b"<f8");
    std::fs::write(&f8, bytes).unwrap();
    let err = logits_of(f8.to_str().unwrap());
    assert!(
        err.contains("f8.npy: dtype is '<f8', expected float32"),
        "{err}"
    );
    // A NaN pixel is named, not turned into logits.
    let nan = scratch("nan.npy");
    let mut data = vec![0.5f32; 12];
    data[7] = f32::NAN;
    std::fs::write(
        &nan,
        NpyF32 {
            shape: vec![1, 3, 2, 2],
            data,
        }
        .to_bytes(),
    )
    .unwrap();
    let err = logits_of(nan.to_str().unwrap());
    assert!(
        err.contains("nan.npy: input value 7 is NaN: the model takes finite numbers only"),
        "{err}"
    );
}

#[test]
fn import_then_classify_images() {
    let bpk = scratch("cifar20.bpk");
    let labels = scratch("labels.txt");
    let names = [
        "plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ];
    std::fs::write(&labels, names.join("\n")).unwrap();
    let said = ok(&[
        "import",
        &fixture("cifar20.pth"),
        "--arch",
        "resnet20",
        "--labels",
        labels.to_str().unwrap(),
        "--out",
        bpk.to_str().unwrap(),
    ]);
    assert!(said.contains("269,722 parameters"), "{said}");

    let image = scratch("red.png");
    image::RgbImage::from_pixel(48, 40, image::Rgb([220, 30, 30]))
        .save(&image)
        .unwrap();
    // No --arch: the Burnpack file names its own.
    let out = ok(&[
        "classify",
        "--weights",
        bpk.to_str().unwrap(),
        "--views",
        "ten-crop",
        "--json",
        image.to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["views"], 10);
    let predictions = json["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 5);
    assert!(names.contains(&predictions[0]["label"].as_str().unwrap()));
    let total = json["total_probability"].as_f64().unwrap();
    assert!((total - 1.0).abs() < 1e-4, "{total}");

    let broken = scratch("broken.png");
    let bytes = std::fs::read(&image).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let err = refused(&[
        "classify",
        "--weights",
        bpk.to_str().unwrap(),
        broken.to_str().unwrap(),
    ]);
    assert!(
        err.contains("broken.png: corrupt or truncated PNG image"),
        "{err}"
    );
}

#[test]
fn import_refuses_weights_for_another_architecture() {
    let out = scratch("wrong.bpk");
    let err = refused(&[
        "import",
        &fixture("tv_basic.pth"),
        "--arch",
        "resnet18",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("tv_basic.pth: weights do not fit resnet18"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for a refused import");
}

/// `resnet import` writes ImageNet's class names into a 1000-class card (the browser package
/// does not embed them), and keeps the labels a 10-class file has none of.
#[test]
fn import_names_the_imagenet_classes() {
    use resnet::io::{ModelCard, Precision, WeightsFile};
    let dir = std::env::temp_dir().join(format!("resnet-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = resnet::model::arch::parse("resnet18").unwrap();
    let model = config.init(&burn::tensor::Device::flex());
    let bare = dir.join("bare.bpk");
    resnet::io::save(
        &model,
        &ModelCard::for_config(config),
        &bare,
        Precision::F16,
    )
    .unwrap();
    let out = dir.join("named.bpk");
    ok(&[
        "import",
        bare.to_str().unwrap(),
        "--arch",
        "resnet18",
        "--out",
        out.to_str().unwrap(),
    ]);
    let card = WeightsFile::open(&out).unwrap().card.unwrap();
    let labels = card.labels.unwrap();
    assert_eq!((labels.len(), labels[0].as_str()), (1000, "tench"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `resnet data imagenet-sample` into `dir/data` (`train` and `val` JPEGs per class): the
/// `--data` argument naming it, and what the command printed.
fn imagenet_sample(dir: &Path, train: usize, val: usize) -> (String, String) {
    let data = dir.join("data");
    let out = ok(&[
        "data",
        "imagenet-sample",
        "--to",
        data.to_str().unwrap(),
        "--train",
        &train.to_string(),
        "--val",
        &val.to_string(),
    ]);
    (format!("imagenet:{}", data.display()), out)
}

/// The issue's run, small: a ResNet-50 trains on an ImageNet-layout folder under torchvision's
/// recipe, and `resnet eval` scores it with the center, 10-crop and multi-scale views; a model
/// that takes 64x64 images is not scored on 32x32 thumbnails.
#[test]
fn train_and_eval_on_an_imagenet_folder() {
    let dir = scratch("imagenet-folder");
    let (data_arg, out) = imagenet_sample(&dir, 2, 1);
    assert!(out.contains("8 train / 4 val JPEGs"), "{out}");
    let run = dir.join("run");
    ok(&[
        "train",
        "--arch",
        "resnet50",
        "--data",
        &data_arg,
        "--recipe",
        "torchvision-v1",
        "--image-size",
        "64",
        "--batch-size",
        "4",
        "--iterations",
        "2",
        "--workers",
        "2",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config.contains(r#""recipe": "torchvision-v1""#), "{config}");
    assert!(config.contains(r#""inputSize": 64"#), "{config}");
    let model = run.join("model.bpk");
    let lines = ok(&[
        "eval",
        "--weights",
        model.to_str().unwrap(),
        "--data",
        &data_arg,
        "--crop",
        "all",
        "--json",
    ]);
    let reports: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let crops: Vec<&str> = reports
        .iter()
        .map(|r| r["crop"].as_str().unwrap())
        .collect();
    assert_eq!(crops, ["Center", "TenCrop", "MultiScale"]);
    for report in &reports {
        assert_eq!(report["images"], 4);
        assert_eq!(report["classes"][0], "tench");
    }
    let err = refused(&[
        "eval",
        "--weights",
        model.to_str().unwrap(),
        "--data",
        "synthetic",
        "--test-size",
        "10",
    ]);
    assert!(err.contains("takes 64x64 images"), "{err}");
}

/// Inception-ResNet-v2 trains natively on full-size images (at 75x75, its smallest input: two
/// steps on the generated ImageNet folder), with Inception's normalisation in its card, and
/// its weights classify.
#[test]
fn inception_resnet_v2_trains_on_an_imagenet_folder() {
    let dir = scratch("imagenet-irv2");
    let (data_arg, _) = imagenet_sample(&dir, 1, 1);
    let run = dir.join("run");
    let out = ok(&[
        "train",
        "--arch",
        "inception_resnet_v2",
        "--data",
        &data_arg,
        "--image-size",
        "75",
        "--batch-size",
        "2",
        "--iterations",
        "2",
        "--workers",
        "2",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.contains("test top-1 error"), "{out}");
    let model = run.join("model.bpk");
    let line = ok(&[
        "eval",
        "--weights",
        model.to_str().unwrap(),
        "--data",
        &data_arg,
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(report["images"], 4);
    // Inception's preprocessing (mean and std 0.5), as timm's weights take.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let normalization = &config["train"]["normalization"];
    assert_eq!(normalization["mean"][0], 0.5, "{normalization}");
    assert_eq!(normalization["std"][2], 0.5, "{normalization}");
    // 55.8 M parameters in a checkpoint and a model file: 440 MB not to leave behind.
    std::fs::remove_dir_all(&dir).ok();
}

/// A GPU that is not there is a one-line error naming it, not a panic.
#[test]
fn a_device_that_does_not_exist_is_named() {
    let err = refused(&["bench", "--arch", "resnet20", "--device", "vulkan:7"]);
    assert!(
        err.contains("--device vulkan:7: no such wgpu discrete GPU 7"),
        "{err}"
    );
}

/// `--devices` runs an update's batches side by side (one per device by default, so the update
/// grows with the devices); devices that would share an update unevenly are refused.
#[test]
fn train_on_two_devices() {
    let dir = scratch("two-devices");
    let common = [
        "train",
        "--arch",
        "resnet8",
        "--data",
        "shapes:64:16",
        "--batch-size",
        "8",
        "--iterations",
        "2",
        "--devices",
        "flex,cpu",
        "--no-progress",
        "--out",
    ];
    let run = dir.join("run");
    let mut args = common.to_vec();
    args.push(run.to_str().unwrap());
    ok(&args);
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config.contains(r#""accumulate": 2"#), "{config}");
    let other = dir.join("uneven");
    let mut args = common.to_vec();
    args.extend([other.to_str().unwrap(), "--accumulate", "3"]);
    let err = refused(&args);
    assert!(err.contains("unevenly"), "{err}");
}
