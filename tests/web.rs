//! The wasm package in real headless Chromium, on WebGPU and on the CPU fallback:
//! `wasm-pack test --headless --chrome --release` (see webdriver.json for the flags).
#![cfg(target_family = "wasm")]

use js_sys::{Float32Array, Reflect, Uint8Array};
use resnet::io::npy::NpyF32;
use resnet::web::Classifier;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

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
    Classifier::load(bytes, options(&[("arch", "resnet20".into()), ("device", device.into())]))
        .await
        .unwrap_or_else(|e| panic!("load on {device}: {e:?}"))
}

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap()
}

/// The `kind` of a rejected promise's `ResNetError`.
fn kind(error: JsValue) -> String {
    assert_eq!(get(&error, "name").as_string().as_deref(), Some("ResNetError"), "{error:?}");
    get(&error, "kind").as_string().unwrap()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i * 7 % 256) as u8).collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

async fn classify(classifier: &Classifier, image: &[u8], tta: &str, top_k: u32) -> Result<JsValue, JsValue> {
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
    let diff = logits.iter().zip(&expected.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
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

#[wasm_bindgen_test]
async fn classification_probabilities_sum_to_one_and_ten_crop_has_ten_views() {
    for device in ["webgpu", "cpu"] {
        let classifier = load(device).await;
        let image = png(40, 36);
        let result = classify(&classifier, &image, "center", 10).await.unwrap();
        let predictions: js_sys::Array = get(&result, "predictions").dyn_into().unwrap();
        assert_eq!(predictions.length(), 10);
        let total: f64 = predictions.iter().map(|p| get(&p, "probability").as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{device}: {total}");
        assert_eq!(get(&result, "views").as_f64(), Some(1.0));
        assert!(get(&result, "ms").as_f64().unwrap() >= 0.0);

        let ten = classify(&classifier, &image, "ten-crop", 3).await.unwrap();
        assert_eq!(get(&ten, "views").as_f64(), Some(10.0));
        let multi = classify(&classifier, &image, "multi-scale", 3).await.unwrap();
        assert_eq!(get(&multi, "views").as_f64(), Some(6.0));
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
        let error = classify(&classifier, &bytes, "center", 5).await.expect_err(name);
        assert_eq!(kind(error), "image", "{name}");
    }
    let error = classify(&classifier, &image, "five-crop", 5).await.unwrap_err();
    assert_eq!(kind(error), "input");
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

    let error = Classifier::load(Uint8Array::from(&b"garbage"[..]), JsValue::UNDEFINED).await.err().unwrap();
    assert_eq!(kind(error), "weights");
    let error = Classifier::load(Uint8Array::from(WEIGHTS), options(&[("arch", "resnet7".into())])).await.err().unwrap();
    assert_eq!(kind(error), "arch");
}
