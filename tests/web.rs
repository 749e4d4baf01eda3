//! The wasm package in real headless Chromium, on WebGPU and on the CPU fallback:
//! `scripts/test.sh` runs it through `wasm-bindgen-test-runner` (see webdriver.json for the
//! browser's flags).
#![cfg(target_family = "wasm")]

use js_sys::{Float32Array, Reflect, Uint8Array};
use resnet::io::npy::NpyF32;
use resnet::web::Classifier;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod ops;

/// A CIFAR ResNet-20 exported by PyTorch (tests/fixtures/make_fixtures.py), its input batch
/// and PyTorch's logits — which the native CPU build matches to 2e-6 (tests/weights.rs).
const WEIGHTS: &[u8] = include_bytes!("fixtures/cifar20.safetensors");
const INPUT: &[u8] = include_bytes!("fixtures/cifar20_input.npy");
const LOGITS: &[u8] = include_bytes!("fixtures/cifar20_logits.npy");

fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (key, value) in pairs {
        Reflect::set(&object, &(*key).into(), value).unwrap();
    }
    object.into()
}

async fn load(device: &str) -> Classifier {
    let bytes = Uint8Array::from(WEIGHTS);
    Classifier::load(
        bytes,
        options(&[("arch", "resnet20".into()), ("device", device.into())]),
    )
    .await
    .unwrap_or_else(|e| panic!("load on {device}: {e:?}"))
}

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap()
}

/// The `kind` of a rejected promise's `ResNetError`.
fn kind(error: JsValue) -> String {
    assert_eq!(
        get(&error, "name").as_string().as_deref(),
        Some("ResNetError"),
        "{error:?}"
    );
    get(&error, "kind").as_string().unwrap()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let pixels: Vec<u8> = (0..width * height * 3)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

async fn classify(
    classifier: &Classifier,
    image: &[u8],
    tta: &str,
    top_k: u32,
) -> Result<JsValue, JsValue> {
    let promise = classifier.classify(
        Uint8Array::from(image).into(),
        options(&[("tta", tta.into()), ("topK", top_k.into())]),
    );
    JsFuture::from(promise).await
}

async fn assert_logits_match_reference(device: &str) {
    let classifier = load(device).await;
    let backend = get(&classifier.backend(), "backend").as_string().unwrap();
    assert_eq!(backend, if device == "cpu" { "cpu" } else { "webgpu" });
    let input = NpyF32::from_bytes(INPUT).unwrap();
    let expected = NpyF32::from_bytes(LOGITS).unwrap();
    let shape: Vec<u32> = input.shape.iter().map(|&d| d as u32).collect();
    let logits = JsFuture::from(classifier.logits(Float32Array::from(&input.data[..]), shape))
        .await
        .unwrap();
    let logits = logits.dyn_into::<Float32Array>().unwrap().to_vec();
    let diff = logits
        .iter()
        .zip(&expected.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    web_sys::console::log_1(&format!("{device}: max |Δlogit| = {diff:e}").into());
    assert!(diff <= 1e-3, "{device}: max |Δlogit| = {diff}");
}

#[wasm_bindgen_test]
async fn webgpu_logits_match_the_native_reference() {
    assert_logits_match_reference("webgpu").await;
}

#[wasm_bindgen_test]
async fn cpu_fallback_logits_match_the_native_reference() {
    assert_logits_match_reference("cpu").await;
}

/// The probability a classification gave class `index` (0 if it is not among the top-k).
fn probability_of(result: &JsValue, index: usize) -> f64 {
    let predictions: js_sys::Array = get(result, "predictions").dyn_into().unwrap();
    predictions
        .iter()
        .find(|p| get(p, "index").as_f64() == Some(index as f64))
        .map_or(0.0, |p| get(&p, "probability").as_f64().unwrap())
}

#[wasm_bindgen_test]
async fn classification_probabilities_sum_to_one_and_ten_crop_has_ten_views() {
    for device in ["webgpu", "cpu"] {
        let classifier = load(device).await;
        let image = png(40, 36);
        let result = classify(&classifier, &image, "center", 10).await.unwrap();
        let predictions: js_sys::Array = get(&result, "predictions").dyn_into().unwrap();
        assert_eq!(predictions.length(), 10);
        let total: f64 = predictions
            .iter()
            .map(|p| get(&p, "probability").as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-4, "{device}: {total}");
        assert_eq!(get(&result, "views").as_f64(), Some(1.0));
        assert!(get(&result, "ms").as_f64().unwrap() >= 0.0);

        // Every view mode gives a distribution (the 10-crop's is checked against the mean of
        // its ten views, cut independently in JavaScript, by tests/e2e/page.mjs), and the
        // views change the answer: the 10-crop and multi-scale averages differ from the center.
        let center: Vec<f64> = (0..10).map(|i| probability_of(&result, i)).collect();
        for (mode, views) in [("ten-crop", 10.0), ("multi-scale", 6.0)] {
            let other = classify(&classifier, &image, mode, 10).await.unwrap();
            assert_eq!(
                get(&other, "views").as_f64(),
                Some(views),
                "{device} {mode}"
            );
            let probabilities: Vec<f64> = (0..10).map(|i| probability_of(&other, i)).collect();
            let total: f64 = probabilities.iter().sum();
            assert!((total - 1.0).abs() < 1e-4, "{device} {mode}: {total}");
            let moved = probabilities
                .iter()
                .zip(&center)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(moved > 1e-4, "{device} {mode}: the same as one center crop");
        }
    }
}

#[wasm_bindgen_test]
async fn bad_images_are_rejected_with_a_typed_error() {
    let classifier = load("webgpu").await;
    let image = png(32, 32);
    let mut huge = png(1, 1);
    huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    for (name, bytes) in [
        ("empty", Vec::new()),
        ("not an image", b"<html>hello</html>".to_vec()),
        ("truncated", image[..image.len() / 2].to_vec()),
        ("20000x20000", huge),
    ] {
        let error = classify(&classifier, &bytes, "center", 5)
            .await
            .expect_err(name);
        assert_eq!(kind(error), "image", "{name}");
    }
    let error = classify(&classifier, &image, "five-crop", 5)
        .await
        .unwrap_err();
    assert_eq!(kind(error), "input");
    // The package leaves the GIF and WebP decoders out (the page decodes them): the error says
    // how.
    let gif: &[u8] = include_bytes!("fixtures/ring.gif");
    let webp: &[u8] = include_bytes!("fixtures/ring.webp");
    for (format, bytes) in [("GIF", gif), ("WebP", webp)] {
        let error = classify(&classifier, bytes, "center", 5).await.unwrap_err();
        let message = get(&error, "message").as_string().unwrap();
        assert!(
            message.contains(format) && message.contains("createImageBitmap"),
            "{message}"
        );
        assert_eq!(kind(error), "image");
    }
}

#[wasm_bindgen_test]
async fn weights_for_another_architecture_are_rejected_with_a_typed_error() {
    let bytes = Uint8Array::from(WEIGHTS);
    let error = Classifier::load(bytes, options(&[("arch", "resnet32".into())]))
        .await
        .err()
        .unwrap();
    let message = get(&error, "message").as_string().unwrap();
    assert!(message.contains("weights do not fit resnet32"), "{message}");
    assert_eq!(kind(error), "weights");

    let error = Classifier::load(Uint8Array::from(&b"garbage"[..]), JsValue::UNDEFINED)
        .await
        .err()
        .unwrap();
    assert_eq!(kind(error), "weights");
    let error = Classifier::load(
        Uint8Array::from(WEIGHTS),
        options(&[("arch", "resnet7".into())]),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(kind(error), "arch");
}

// ---------------------------------------------------------------- training in the browser

use resnet::web::{Dataset, Trainer};

async fn step_losses(trainer: &Trainer, n: usize) -> Vec<f64> {
    let result = JsFuture::from(trainer.step(n, None)).await.unwrap();
    let steps: js_sys::Array = get(&result, "steps").dyn_into().unwrap();
    steps
        .iter()
        .map(|s| get(&s, "loss").as_f64().unwrap())
        .collect()
}

fn trainer_options(plain: bool, device: &str) -> JsValue {
    options(&[
        ("arch", "resnet20".into()),
        ("plain", plain.into()),
        ("batchSize", 2.into()),
        ("seed", 11.into()),
        ("augment", false.into()),
        ("device", device.into()),
        ("optimizer", options(&[("lr", 0.05.into())])),
        ("schedule", options(&[("kind", "constant".into())])),
    ])
}

/// 52 steps of ResNet-20 and plain-20 on one small batch (the dataset is 2 images) lower the
/// loss on the CPU fallback, and 12 of ResNet-20 on WebGPU, where SwiftShader takes 6 s a step:
/// its loss halves at the first step and is under 1e-5 by the tenth (2026-12-02). The plain
/// twin is left out on WebGPU: it runs a subset of ResNet-20's kernels (no shortcuts, no joins).
#[wasm_bindgen_test]
async fn training_steps_lower_the_loss_of_residual_and_plain_nets() {
    let data =
        Dataset::shapes(options(&[("trainSize", 2.into()), ("testSize", 2.into())])).unwrap();
    for (device, plain, steps) in [("webgpu", false, 12), ("cpu", false, 52), ("cpu", true, 52)] {
        let trainer = Trainer::create(trainer_options(plain, device), &data)
            .await
            .unwrap();
        let started = js_sys::Date::now();
        let losses = step_losses(&trainer, steps).await;
        let seconds = (js_sys::Date::now() - started) / 1e3;
        web_sys::console::log_1(
            &format!("{device} plain={plain}: {steps} steps in {seconds:.1} s").into(),
        );
        let (first, last) = (losses[0], losses[steps - 1]);
        web_sys::console::log_1(
            &format!("{device} plain={plain}: loss {first:.3} → {last:.3}").into(),
        );
        assert!(
            last < first * 0.5,
            "{device} plain={plain}: {first} → {last}"
        );
        assert_eq!(trainer.step_count(), steps);
        assert_eq!(trainer.layers().len(), 20, "19 convolutions + fc");
    }
}

/// Snapshot → restore continues with the same next losses as the uninterrupted run.
#[wasm_bindgen_test]
async fn snapshot_and_restore_continue_with_the_same_losses() {
    let data =
        Dataset::shapes(options(&[("trainSize", 8.into()), ("testSize", 4.into())])).unwrap();
    let o = trainer_options(false, "webgpu");
    Reflect::set(&o, &"augment".into(), &true.into()).unwrap();
    let trainer = Trainer::create(o, &data).await.unwrap();
    step_losses(&trainer, 5).await;
    let snapshot: Uint8Array = JsFuture::from(trainer.snapshot(None))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    let uninterrupted = step_losses(&trainer, 3).await;
    let restored = Trainer::restore(snapshot.into(), &data, Some("webgpu".into()))
        .await
        .unwrap();
    assert_eq!(restored.step_count(), 5);
    let resumed = step_losses(&restored, 3).await;
    for (a, b) in resumed.iter().zip(&uninterrupted) {
        assert!(
            (a - b).abs() < 1e-4,
            "resumed {resumed:?} vs {uninterrupted:?}"
        );
    }
}

/// The trainer's exported weights, loaded as a `Classifier` on the CPU.
async fn exported_classifier(trainer: &Trainer) -> Classifier {
    let bytes: Uint8Array = JsFuture::from(trainer.export_weights(JsValue::UNDEFINED))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    Classifier::load(bytes, options(&[("device", "cpu".into())]))
        .await
        .unwrap()
}

/// Exported weights load in `Classifier` and give the trainer's eval-mode predictions.
#[wasm_bindgen_test]
async fn exported_weights_classify_like_the_trainer() {
    let data =
        Dataset::shapes(options(&[("trainSize", 8.into()), ("testSize", 6.into())])).unwrap();
    let trainer = Trainer::create(trainer_options(false, "cpu"), &data)
        .await
        .unwrap();
    step_losses(&trainer, 4).await;
    let classifier = exported_classifier(&trainer).await;
    assert_eq!(classifier.arch(), "resnet20");
    assert_eq!(classifier.labels()[1], "ring");
    let indices: Vec<usize> = (0..6).collect();
    let predicted = JsFuture::from(trainer.predict(indices, None))
        .await
        .unwrap();
    let predicted: js_sys::Array = predicted.dyn_into().unwrap();
    for (i, p) in predicted.iter().enumerate() {
        let image = data.test_image(i).unwrap();
        let rgba: js_sys::Uint8ClampedArray = get(&image, "rgba").dyn_into().unwrap();
        // From the JS array itself: a view of a temporary Rust buffer would be reused memory.
        let image_data = web_sys::ImageData::new_with_js_u8_clamped_array(&rgba, 32).unwrap();
        let result =
            JsFuture::from(classifier.classify(image_data.into(), options(&[("topK", 1.into())])))
                .await
                .unwrap();
        let top: js_sys::Array = get(&result, "predictions").dyn_into().unwrap();
        let trainer_top: js_sys::Array = get(&p, "top").dyn_into().unwrap();
        let (a, b) = (
            get(&top.get(0), "probability").as_f64().unwrap(),
            get(&trainer_top.get(0), "probability").as_f64().unwrap(),
        );
        assert_eq!(
            get(&top.get(0), "index").as_f64(),
            get(&trainer_top.get(0), "index").as_f64(),
            "image {i}"
        );
        assert!((a - b).abs() < 1e-4, "image {i}: {a} vs {b}");
    }
}

/// On the CPU fallback a batch beyond wasm32's 4 GB is refused up front (it would abort the
/// module), naming a batch that fits.
#[wasm_bindgen_test]
async fn a_batch_too_large_for_wasm_memory_is_refused() {
    let data =
        Dataset::shapes(options(&[("trainSize", 8.into()), ("testSize", 4.into())])).unwrap();
    let o = trainer_options(false, "cpu");
    Reflect::set(&o, &"arch".into(), &"resnet110".into()).unwrap();
    Reflect::set(&o, &"batchSize".into(), &512.into()).unwrap();
    let error = Trainer::create(o, &data)
        .await
        .err()
        .expect("batch 512 of ResNet-110 on the CPU");
    let message = get(&error, "message").as_string().unwrap();
    assert_eq!(kind(error), "device");
    assert!(
        message.contains("a batch of 512") && message.contains("or less"),
        "{message}"
    );
}

#[wasm_bindgen_test]
async fn bad_datasets_and_diverging_rates_are_reported() {
    let file = options(&[
        ("name", "data_batch_1.bin".into()),
        ("bytes", Uint8Array::from(&[1u8; 100][..]).into()),
    ]);
    let error = Dataset::cifar(js_sys::Array::of1(&file)).err().unwrap();
    assert_eq!(kind(error.clone()), "data");
    assert!(
        get(&error, "message")
            .as_string()
            .unwrap()
            .contains("byte offset")
    );

    let data =
        Dataset::shapes(options(&[("trainSize", 8.into()), ("testSize", 4.into())])).unwrap();
    let o = trainer_options(false, "cpu");
    Reflect::set(&o, &"optimizer".into(), &options(&[("lr", 1e7.into())])).unwrap();
    let trainer = Trainer::create(o, &data).await.unwrap();
    let mut diverged = None;
    for _ in 0..30 {
        if let Err(e) = JsFuture::from(trainer.step(1, None)).await {
            diverged = Some(e);
            break;
        }
    }
    let error = diverged.expect("a rate of 1e7 diverges");
    assert_eq!(kind(error.clone()), "diverged");
    // The trainer keeps its last good state and can still be exported.
    assert!(
        JsFuture::from(trainer.export_weights(JsValue::UNDEFINED))
            .await
            .is_ok()
    );
}

/// A folder dataset of three *new* classes, as a user would drop it: PNGs of Shapes' disks,
/// rings and squares filed under other names.
fn new_class_folder() -> js_sys::Array {
    use image::ImageEncoder;
    let shapes = resnet::data::synthetic::Shapes {
        len: 600,
        ..resnet::data::synthetic::Shapes::train(5)
    };
    let wanted = [(0, "round"), (1, "hollow"), (2, "box")];
    let files = js_sys::Array::new();
    let mut per_class = [0; 3];
    for i in 0..shapes.len {
        let Some(k) = wanted
            .iter()
            .position(|(label, _)| *label == shapes.label(i))
        else {
            continue;
        };
        if per_class[k] == 20 {
            continue;
        }
        per_class[k] += 1;
        let planar = shapes.render(i);
        let rgb: Vec<u8> = (0..1024)
            .flat_map(|p| [planar[p], planar[1024 + p], planar[2048 + p]])
            .collect();
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgb, 32, 32, image::ExtendedColorType::Rgb8)
            .unwrap();
        let name = format!("new/{}/{i}.png", wanted[k].1);
        files.push(&options(&[
            ("name", name.into()),
            ("bytes", Uint8Array::from(&png[..]).into()),
        ]));
    }
    assert_eq!(per_class, [20; 3]);
    files
}

/// Fine-tuning the page's bundled ResNet-20 (trained by `resnet train`) to three new classes
/// with a frozen backbone: only the new head gets gradients, the loss falls, and the export is
/// a 3-class model that `Classifier` loads with the folder names as labels.
#[wasm_bindgen_test]
async fn fine_tuning_to_new_classes_trains_only_the_head() {
    let data = Dataset::from_images(new_class_folder()).unwrap();
    assert_eq!(data.classes(), vec!["box", "hollow", "round"]);
    let weights = Uint8Array::from(&include_bytes!("../www/models/resnet20-shapes.bpk")[..]);
    let o = options(&[
        ("newNumClasses", 3.into()),
        ("freezeBackbone", true.into()),
        ("batchSize", 8.into()),
        ("seed", 3.into()),
        ("augment", false.into()),
        ("device", "webgpu".into()),
        ("optimizer", options(&[("lr", 0.05.into())])),
        ("schedule", options(&[("kind", "constant".into())])),
    ]);
    let trainer = Trainer::fine_tune(weights, o, &data).await.unwrap();
    let result = JsFuture::from(trainer.step(24, None)).await.unwrap();
    let steps: js_sys::Array = get(&result, "steps").dyn_into().unwrap();
    let losses: Vec<f64> = steps
        .iter()
        .map(|s| get(&s, "loss").as_f64().unwrap())
        .collect();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&losses[..4]), mean(&losses[20..]));
    web_sys::console::log_1(&format!("fine-tune: loss {first:.3} → {last:.3}").into());
    assert!(last < 0.6 * first, "fine-tuning losses {losses:?}");
    let norms: js_sys::Array = get(&steps.get(23), "gradNorms").dyn_into().unwrap();
    let norms: Vec<f64> = norms.iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(norms.len(), 20);
    assert!(
        norms[..19].iter().all(|&n| n == 0.0),
        "frozen layers got gradients: {norms:?}"
    );
    assert!(norms[19] > 0.0, "the new head got no gradient");

    let classifier = exported_classifier(&trainer).await;
    assert_eq!(classifier.num_classes(), 3);
    assert_eq!(classifier.labels(), vec!["box", "hollow", "round"]);
}

/// `Trainer.fineTune` takes any member of the family, not only ResNets: a DenseNet-BC card
/// (written by the package, 10 classes) is fine-tuned to three new classes on a frozen
/// backbone; the export is a 3-class DenseNet with the folder names as labels.
#[wasm_bindgen_test]
async fn fine_tuning_takes_a_densenet_card() {
    use burn::tensor::Device;
    use resnet::io::{ModelCard, Precision};
    use resnet::model::network;

    let config = network::parse("densenet_bc16_4").unwrap();
    let model = config.init(&Device::flex());
    let card = ModelCard::for_config(config);
    let bytes = resnet::io::to_bytes_async(&model, &card, Precision::F32)
        .await
        .unwrap();
    let data = Dataset::from_images(new_class_folder()).unwrap();
    let o = options(&[
        ("freezeBackbone", true.into()),
        ("batchSize", 8.into()),
        ("augment", false.into()),
        ("device", "cpu".into()),
    ]);
    let trainer = Trainer::fine_tune(Uint8Array::from(&bytes[..]), o, &data)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let losses = step_losses(&trainer, 2).await;
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let classifier = exported_classifier(&trainer).await;
    assert_eq!(classifier.arch(), "densenet_bc16_4");
    assert_eq!(classifier.num_classes(), 3);
    assert_eq!(classifier.labels(), vec!["box", "hollow", "round"]);
}

/// Resolves after a macrotask: by then a started `step()` is waiting on the GPU.
async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let set_timeout: js_sys::Function = Reflect::get(&js_sys::global(), &"setTimeout".into())
            .unwrap()
            .dyn_into()
            .unwrap();
        set_timeout
            .call2(&JsValue::NULL, &resolve, &0.into())
            .unwrap();
    });
    let _ = JsFuture::from(promise).await;
}

/// While a step is in flight on WebGPU every getter answers (it used to panic with "already
/// mutably borrowed" and kill the module), a second step is refused as busy, and new
/// hyper-parameters are queued, then applied at the next step boundary and reported.
#[wasm_bindgen_test]
async fn every_method_is_safe_while_a_step_is_in_flight() {
    let data =
        Dataset::shapes(options(&[("trainSize", 4.into()), ("testSize", 2.into())])).unwrap();
    let trainer = Trainer::create(trainer_options(false, "webgpu"), &data)
        .await
        .unwrap();
    step_losses(&trainer, 1).await;
    let pending = JsFuture::from(trainer.step(2, None));
    next_task().await;
    assert_eq!(trainer.step_count(), 1, "the getter answers mid-step");
    assert_eq!(trainer.lr(), 0.05);
    assert_eq!(trainer.layers().len(), 20);
    let nets: js_sys::Array = trainer.nets().dyn_into().unwrap();
    assert_eq!(nets.length(), 1);
    let busy = JsFuture::from(trainer.step(1, None)).await.err().unwrap();
    assert_eq!(kind(busy), "input");
    let change = options(&[("optimizer", options(&[("lr", 0.01.into())]))]);
    trainer.set_hyperparameters(change).unwrap();
    let bad = options(&[("optimizer", options(&[("momentum", 3.into())]))]);
    assert_eq!(
        kind(trainer.set_hyperparameters(bad).err().unwrap()),
        "input"
    );
    let result = pending.await.unwrap();
    let steps: js_sys::Array = get(&result, "steps").dyn_into().unwrap();
    let rates: Vec<f64> = steps
        .iter()
        .map(|s| get(&s, "lr").as_f64().unwrap())
        .collect();
    // The change arrived mid-step 2: step 2 kept its rate, step 3 used the new one.
    assert_eq!(rates, vec![0.05, 0.01], "queued at the step boundary");
    let applied: js_sys::Array = get(&result, "applied").dyn_into().unwrap();
    assert_eq!(get(&applied.get(0), "step").as_f64(), Some(3.0));
    assert_eq!(trainer.lr(), 0.01);
}

/// The plateau schedule offered by the npm API lowers the rate when evaluations stop
/// improving (the loop feeds it every evaluation).
#[wasm_bindgen_test]
async fn the_plateau_schedule_lowers_the_rate_in_the_browser() {
    let data =
        Dataset::shapes(options(&[("trainSize", 4.into()), ("testSize", 4.into())])).unwrap();
    let o = trainer_options(false, "cpu");
    Reflect::set(
        &o,
        &"schedule".into(),
        // Threshold 1: every evaluation after the first is "no improvement"; patience 0.
        &options(&[
            ("kind", "plateau".into()),
            ("patience", 0.into()),
            ("threshold", 1.0.into()),
        ]),
    )
    .unwrap();
    let trainer = Trainer::create(o, &data).await.unwrap();
    assert_eq!(trainer.lr(), 0.05);
    for _ in 0..3 {
        JsFuture::from(trainer.evaluate(None, None)).await.unwrap();
    }
    // The first evaluation sets the best; the next two each divide the rate by 10.
    assert!((trainer.lr() - 0.0005).abs() < 1e-12, "lr {}", trainer.lr());
}

/// Preprocessing overrides that cannot work are refused, not a division by zero or an
/// allocation of gigabytes.
#[wasm_bindgen_test]
async fn impossible_input_sizes_are_refused() {
    for size in [0, 100_000] {
        let error = Classifier::load(
            Uint8Array::from(WEIGHTS),
            options(&[
                ("arch", "resnet20".into()),
                ("device", "cpu".into()),
                ("input", options(&[("size", size.into())])),
            ]),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(kind(error), "input", "size {size}");
    }
    // A non-finite input value is named, on the GPU as on the CPU.
    let classifier = load("webgpu").await;
    let mut input = vec![0.25f32; 3 * 32 * 32];
    input[100] = f32::INFINITY;
    let promise = classifier.logits(Float32Array::from(&input[..]), vec![1, 3, 32, 32]);
    let error = JsFuture::from(promise).await.unwrap_err();
    let message = get(&error, "message").as_string().unwrap();
    assert!(message.contains("input value 100 is inf"), "{message}");
    assert_eq!(kind(error), "input");
}

/// One CIFAR record: `label_bytes` (CIFAR-100: coarse, then fine), then 32x32 planar RGB
/// whose bytes follow from `seed`.
fn cifar_record(labels: &[u8], seed: usize) -> Vec<u8> {
    let mut record = labels.to_vec();
    record.extend((0..3072).map(|i| ((i * 31 + seed * 17) % 251) as u8));
    record
}

fn cifar_file(name: &str, records: impl Iterator<Item = Vec<u8>>) -> JsValue {
    let bytes: Vec<u8> = records.flatten().collect();
    options(&[
        ("name", name.into()),
        ("bytes", Uint8Array::from(&bytes[..]).into()),
    ])
}

/// `Dataset.cifar` reads CIFAR-10 and CIFAR-100 binaries as the page gets them: training
/// batches and the test batch kept apart, each image's pixels and label as written (the fine
/// label for CIFAR-100), a tenth held out when no test file is given; a trainer steps on it.
#[wasm_bindgen_test]
async fn cifar_binaries_become_a_dataset_a_trainer_steps_on() {
    let files = js_sys::Array::of3(
        &cifar_file(
            "data_batch_1.bin",
            (0..12).map(|i| cifar_record(&[(i % 10) as u8], i)),
        ),
        &cifar_file(
            "data_batch_2.bin",
            (12..20).map(|i| cifar_record(&[(i % 10) as u8], i)),
        ),
        &cifar_file(
            "test_batch.bin",
            (0..5).map(|i| cifar_record(&[9 - i as u8], 100 + i)),
        ),
    );
    let data = Dataset::cifar(files).unwrap();
    assert_eq!(
        (data.num_classes(), data.train_size(), data.test_size()),
        (10, 20, 5)
    );
    assert_eq!(data.classes()[3], "cat");
    let image = data.test_image(2).unwrap();
    assert_eq!(get(&image, "label").as_f64(), Some(7.0));
    let rgba = js_sys::Uint8ClampedArray::from(get(&image, "rgba")).to_vec();
    let planar = &cifar_record(&[], 102);
    for p in [0, 1, 517, 1023] {
        let expected = [planar[p], planar[1024 + p], planar[2048 + p], 255];
        assert_eq!(rgba[p * 4..p * 4 + 4], expected, "pixel {p}");
    }

    // CIFAR-100: two label bytes, the fine one counts.
    let files = js_sys::Array::of2(
        &cifar_file(
            "train.bin",
            (0..6).map(|i| cifar_record(&[3, 40 + i as u8], i)),
        ),
        &cifar_file(
            "test.bin",
            (0..2).map(|i| cifar_record(&[3, 90 + i as u8], i)),
        ),
    );
    let data = Dataset::cifar(files).unwrap();
    assert_eq!(
        (data.num_classes(), data.train_size(), data.test_size()),
        (100, 6, 2)
    );
    assert_eq!(
        get(&data.test_image(1).unwrap(), "label").as_f64(),
        Some(91.0)
    );

    // No test file: a tenth of the training images is held out.
    let files = js_sys::Array::of1(&cifar_file(
        "data_batch_1.bin",
        (0..20).map(|i| cifar_record(&[(i % 10) as u8], i)),
    ));
    let data = Dataset::cifar(files).unwrap();
    assert_eq!((data.train_size(), data.test_size()), (18, 2));

    let o = trainer_options(false, "cpu");
    Reflect::set(&o, &"arch".into(), &"resnet8".into()).unwrap();
    let trainer = Trainer::create(o, &data).await.unwrap();
    assert_eq!(trainer.steps_per_epoch(), 9); // 18 training images, batch 2
    let losses = step_losses(&trainer, 2).await;
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
}

/// `values` of a tensor on any device, read without blocking the page.
async fn read(tensor: burn::tensor::Tensor<4>) -> Vec<f32> {
    tensor
        .into_data_async()
        .await
        .unwrap()
        .try_to_vec::<f32>()
        .unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    web_sys::console::log_1(&ops::check(what, got, want).into());
}

/// Runs one of the successors' op cases (tests/ops) on the CPU (flex) and on WebGPU in the
/// same page and compares every output and gradient.
async fn on_webgpu(case: ops::Case) {
    let (gpu, _) = resnet::web::device(resnet::web::Preference::WebGpu)
        .await
        .unwrap();
    let mut results = Vec::new();
    for device in [ops::cpu(), gpu.autodiff()] {
        let mut values = Vec::new();
        for (name, tensor) in case.run(&device) {
            values.push((name, read(tensor).await));
        }
        results.push(values);
    }
    for ((name, got), (_, want)) in results[1].iter().zip(&results[0]) {
        assert_close(name, got, want);
    }
}

#[wasm_bindgen_test]
async fn grouped_convolution_and_squeeze_excitation_match_the_cpu_on_webgpu() {
    on_webgpu(ops::grouped_convolution_and_squeeze_excitation()).await;
}

#[wasm_bindgen_test]
async fn pooling_a_map_one_pixel_high_matches_the_cpu_on_webgpu() {
    on_webgpu(ops::pooling_a_map_one_pixel_high()).await;
}

#[wasm_bindgen_test]
async fn folded_inference_matches_the_cpu_on_webgpu() {
    on_webgpu(ops::folded_inference()).await;
}

#[wasm_bindgen_test]
async fn dense_concatenation_matches_the_cpu_on_webgpu() {
    on_webgpu(ops::dense_concatenation()).await;
}

#[wasm_bindgen_test]
async fn split_attention_matches_the_cpu_on_webgpu() {
    on_webgpu(ops::split_attention()).await;
}

#[wasm_bindgen_test]
async fn inception_resnet_units_match_the_cpu_on_webgpu() {
    on_webgpu(ops::inception_resnet_units()).await;
}

/// `config` (random weights) written as a Burnpack file with its card, loaded through the npm
/// `Classifier.load` on `device` without being told its architecture: it is named `arch`, and
/// its logits on a `batch` of `size`x`size` inputs are the CPU model's.
async fn load_card_and_compare(
    config: resnet::model::NetConfig,
    device: &str,
    [batch, size]: [usize; 2],
    arch: &str,
) -> Classifier {
    use burn::tensor::{Device, Distribution, Tensor};
    use resnet::io::{ModelCard, Precision};

    let model = config.init(&Device::flex());
    let card = ModelCard::for_config(config.clone());
    let bytes = resnet::io::to_bytes_async(&model, &card, Precision::F32)
        .await
        .unwrap();
    let classifier = Classifier::load(
        Uint8Array::from(&bytes[..]),
        options(&[("device", device.into())]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(classifier.arch(), arch);
    let shape = [batch, 3, size, size];
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex());
    let input = read(x.clone()).await;
    let want = read(model.forward(x).unsqueeze_dims(&[2, 3])).await;
    let dims = shape.iter().map(|&d| d as u32).collect();
    let got = JsFuture::from(classifier.logits(Float32Array::from(&input[..]), dims))
        .await
        .unwrap()
        .dyn_into::<Float32Array>()
        .unwrap()
        .to_vec();
    assert_close(&format!("{arch} logits on {device}"), &got, &want);
    classifier
}

/// The npm `Classifier.load` takes a DenseNet: a DenseNet-BC written in the page on the CPU
/// loads on WebGPU, is named, and gives the CPU model's logits.
#[wasm_bindgen_test]
async fn classifier_load_takes_a_densenet_card() {
    let config = resnet::model::network::parse("densenet_bc16_4").unwrap();
    load_card_and_compare(config, "webgpu", [2, 32], "densenet_bc16_4").await;
}

/// The npm `Classifier.load` takes Inception-ResNet-v2 (here with one unit per stage, timm's
/// widths, at its smallest input, 75x75): the file names the net, and the package's logits on
/// the CPU are the native-side model's.
#[wasm_bindgen_test]
async fn classifier_load_takes_an_inception_resnet_card() {
    use resnet::io::{ModelCard, Normalization};
    use resnet::model::{InceptionResNetConfig, NetConfig};

    let config = NetConfig::from(
        InceptionResNetConfig::new()
            .with_repeats([1, 1, 1])
            .with_num_classes(10),
    );
    assert_eq!(
        ModelCard::for_config(config.clone()).normalization,
        Normalization::INCEPTION
    );
    let classifier =
        load_card_and_compare(config, "cpu", [1, 75], "inception_resnet_v2-1x1x1").await;
    // Smaller than its unpadded windows allow: a typed error, not a panic of the module.
    let small = vec![0.0f32; 3 * 32 * 32];
    let promise = classifier.logits(Float32Array::from(&small[..]), vec![1, 3, 32, 32]);
    let error = JsFuture::from(promise).await.unwrap_err();
    let message = get(&error, "message").as_string().unwrap();
    assert!(message.contains("at least 75x75"), "{message}");
    assert_eq!(kind(error), "input");
}
