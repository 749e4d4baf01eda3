//! `Classifier` for JavaScript: load weights, classify images, read logits.

use std::rc::Rc;

use burn::tensor::{Tensor, TensorData};
use js_sys::{Float32Array, Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::backend::{self, BackendInfo, Preference};
use super::error::{Kind, js_error};
use super::js::{now_ms, options, to_js};
use crate::data::views::TestView;
use crate::infer::{self, Prediction};
use crate::io::{Normalization, WeightsFile};
use crate::readback::read_f32;

/// Options of `Classifier.load`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LoadOptions {
    arch: Option<String>,
    num_classes: Option<usize>,
    labels: Option<Vec<String>>,
    device: Option<String>,
    input: Option<InputOptions>,
}

/// Overrides of the model card's preprocessing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InputOptions {
    size: Option<usize>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
}

/// Options of `classifier.classify`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ClassifyOptions {
    top_k: Option<usize>,
    tta: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClassifyResult {
    predictions: Vec<Prediction>,
    ms: f64,
    backend: &'static str,
    views: usize,
}

/// A ResNet ready to classify images, on WebGPU or the CPU.
#[wasm_bindgen]
pub struct Classifier {
    inner: Rc<infer::Classifier>,
    backend: BackendInfo,
}

#[wasm_bindgen]
impl Classifier {
    /// Loads Burnpack (or torchvision-layout safetensors) weights.
    ///
    /// A `.bpk` written by this project names its architecture; other files need `arch`
    /// (and `numClasses` unless it is the family's default).
    pub async fn load(
        weights: Uint8Array,
        #[wasm_bindgen(unchecked_param_type = "LoadOptions | undefined")] options: JsValue,
    ) -> Result<Classifier, JsValue> {
        let opts: LoadOptions = self::options(options)?;
        let preference =
            Preference::parse(opts.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let file =
            WeightsFile::from_bytes(weights.to_vec(), "weights").map_err(crate::Error::from)?;
        let config = match &opts.arch {
            Some(name) => {
                let mut config = crate::model::network::parse(name).map_err(crate::Error::from)?;
                if let Some(classes) = opts.num_classes {
                    config = config.with_num_classes(classes);
                }
                Some(config)
            }
            None => match (&file.card, opts.num_classes) {
                (Some(card), Some(n)) if card.config.num_classes() != n => {
                    return Err(js_error(
                        Kind::Weights,
                        format!(
                            "the weights have {} classes, not {n}",
                            card.config.num_classes()
                        ),
                    ));
                }
                _ => None,
            },
        };
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let mut classifier = infer::Classifier::load(file, config, &device)?;
        if let Some(labels) = opts.labels {
            classifier.set_labels(labels)?;
        }
        if let Some(input) = opts.input {
            let mut card = classifier.card().clone();
            card.input_size = input.size.unwrap_or(card.input_size);
            card.normalization = Normalization {
                mean: input.mean.unwrap_or(card.normalization.mean),
                std: input.std.unwrap_or(card.normalization.std),
            };
            card.validate()
                .map_err(|e| js_error(Kind::Input, format!("bad input options: {e}")))?;
            classifier = infer::Classifier::new(classifier.model().clone(), card, &device);
        }
        Ok(Classifier {
            inner: Rc::new(classifier),
            backend,
        })
    }

    /// A randomly initialised (He init) network: for benchmarks and as a starting point.
    /// Options: `arch` (required), `numClasses`, `device`, `seed`.
    pub async fn random(
        #[wasm_bindgen(
            unchecked_param_type = "{ arch: string; numClasses?: number; device?: \"auto\" | \"webgpu\" | \"cpu\"; seed?: number }"
        )]
        options: JsValue,
    ) -> Result<Classifier, JsValue> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct RandomOptions {
            arch: Option<String>,
            num_classes: Option<usize>,
            device: Option<String>,
            seed: Option<u64>,
        }
        let opts: RandomOptions = self::options(options)?;
        let name = opts
            .arch
            .ok_or_else(|| js_error(Kind::Input, "arch is required"))?;
        let mut config = crate::model::network::parse(&name).map_err(crate::Error::from)?;
        if let Some(classes) = opts.num_classes {
            config = config.with_num_classes(classes);
        }
        config.validate().map_err(crate::Error::from)?;
        let preference =
            Preference::parse(opts.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        device.seed(opts.seed.unwrap_or(0));
        let card = crate::io::ModelCard::for_config(config.clone());
        let inner = infer::Classifier::new(config.init(&device), card, &device);
        Ok(Classifier {
            inner: Rc::new(inner),
            backend,
        })
    }

    /// Classifies encoded image bytes (JPEG/PNG; WebP, BMP and GIF as an `ImageData`) or an `ImageData`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Classification>")]
    pub fn classify(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ImageData")] image: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ClassifyOptions | undefined")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        let backend = self.backend.backend;
        future_to_promise(async move {
            let opts: ClassifyOptions = self::options(options)?;
            let tta = match opts.tta.as_deref() {
                None => TestView::Center,
                Some(name) => name.parse().map_err(|e| js_error(Kind::Input, e))?,
            };
            let image = decode(image)?;
            let started = now_ms();
            let result = inner.classify(&image, tta, opts.top_k.unwrap_or(5)).await?;
            Ok(to_js(&ClassifyResult {
                predictions: result.predictions,
                ms: now_ms() - started,
                backend,
                views: result.views,
            }))
        })
    }

    /// Raw logits of a normalised NCHW batch (for parity checks against other frameworks).
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array>")]
    pub fn logits(&self, input: Float32Array, shape: Vec<u32>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let shape: [usize; 4] = match shape[..] {
                [n, c, h, w] if n > 0 && c == 3 && h > 0 && w > 0 => {
                    [n as usize, 3, h as usize, w as usize]
                }
                _ => {
                    return Err(js_error(
                        Kind::Input,
                        format!("shape must be [N, 3, H, W], got {shape:?}"),
                    ));
                }
            };
            let data = input.to_vec();
            // Checked: on wasm32 four u32 dims easily overflow a usize product.
            let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if count != Some(data.len()) {
                return Err(js_error(
                    Kind::Input,
                    format!("{} values for shape {shape:?}", data.len()),
                ));
            }
            crate::infer::finite_input(&data).map_err(|e| js_error(Kind::Input, e))?;
            crate::infer::fits_input(inner.card(), shape[2], shape[3])
                .map_err(|e| js_error(Kind::Input, e))?;
            let x = Tensor::<4>::from_data(TensorData::new(data, shape), inner.device());
            let logits = read_f32(inner.logits(x)).await?;
            Ok(Float32Array::from(&logits[..]).into())
        })
    }

    /// Which backend runs this model, on which adapter.
    #[wasm_bindgen(getter, unchecked_return_type = "BackendInfo")]
    pub fn backend(&self) -> JsValue {
        to_js(&self.backend)
    }

    /// The class names.
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.inner.labels().to_vec()
    }

    /// The architecture's name, e.g. `resnet20`.
    #[wasm_bindgen(getter)]
    pub fn arch(&self) -> String {
        self.inner.card().config.name()
    }

    /// Number of classes.
    #[wasm_bindgen(getter, js_name = numClasses)]
    pub fn num_classes(&self) -> usize {
        self.inner.card().config.num_classes()
    }

    /// The model card (architecture, preprocessing, description) as a plain object.
    #[wasm_bindgen(getter)]
    pub fn card(&self) -> JsValue {
        to_js(self.inner.card())
    }
}

/// Decodes a `Uint8Array` of encoded bytes or an `ImageData`.
fn decode(image: JsValue) -> Result<image::RgbImage, JsValue> {
    if let Some(bytes) = image.dyn_ref::<Uint8Array>() {
        return Ok(crate::data::image::decode(&bytes.to_vec()).map_err(crate::Error::from)?);
    }
    let get = |key: &str| js_sys::Reflect::get(&image, &key.into()).ok();
    let (Some(width), Some(height), Some(data)) = (
        get("width").and_then(|v| v.as_f64()),
        get("height").and_then(|v| v.as_f64()),
        get("data").filter(|d| d.is_instance_of::<js_sys::Uint8ClampedArray>()),
    ) else {
        return Err(js_error(
            Kind::Input,
            "image must be a Uint8Array of encoded bytes or an ImageData",
        ));
    };
    let rgba = js_sys::Uint8ClampedArray::from(data).to_vec();
    Ok(
        crate::data::image::from_rgba(width as u32, height as u32, rgba)
            .map_err(crate::Error::from)?,
    )
}
