//! `Dataset` for JavaScript: the embedded Shapes, CIFAR binary batches the user drops, or a
//! dropped folder of class sub-folders. Each holds a training and a test split.

use std::rc::Rc;

use js_sys::{Array, Uint8ClampedArray};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use super::error::{Kind, js_error};
use super::js::to_js;
use crate::data::cifar::{self, PIXELS, Variant};
use crate::data::dataset::Dataset as Images;
use crate::data::image_set::ImageSet;
use crate::data::spec::{DataSpec, HELD_OUT, HELD_OUT_SEED};
use crate::data::synthetic;

/// A training split and a test split of labelled 32x32 RGB images.
#[wasm_bindgen]
#[derive(Clone)]
pub struct Dataset {
    pub(crate) train: Rc<Images>,
    pub(crate) test: Rc<Images>,
    pub(crate) name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ShapesOptions {
    train_size: Option<usize>,
    test_size: Option<usize>,
}

fn data_error(message: impl std::fmt::Display) -> JsValue {
    js_error(Kind::Data, message)
}

fn entries(files: &Array) -> Result<Vec<(String, Vec<u8>)>, JsValue> {
    super::js::named_bytes(files, "file")
        .map_err(|_| data_error("each file must be { name: string, bytes: Uint8Array }"))
}

#[wasm_bindgen]
impl Dataset {
    /// The embedded Shapes dataset (10 classes, generated on demand, same on every machine).
    pub fn shapes(
        #[wasm_bindgen(
            unchecked_param_type = "{ trainSize?: number; testSize?: number } | undefined"
        )]
        options: JsValue,
    ) -> Result<Dataset, JsValue> {
        let o: ShapesOptions = super::js::options(options)?;
        let spec = DataSpec::Shapes {
            train_size: o.train_size.unwrap_or(synthetic::DEFAULT_TRAIN),
            test_size: o.test_size.unwrap_or(synthetic::DEFAULT_TEST),
        };
        let (train, test) = spec
            .shapes()
            .map_err(|e| js_error(Kind::Input, e))?
            .expect("a Shapes spec");
        Ok(Dataset {
            name: format!("Shapes ({} train / {} test)", train.len(), test.len()),
            train: Rc::new(train),
            test: Rc::new(test),
        })
    }

    /// CIFAR binary batches: `[{ name, bytes }]`. CIFAR-10's `data_batch_*.bin` and
    /// `test_batch.bin`, or CIFAR-100's `train.bin` and `test.bin`; without a test file a
    /// random tenth is held out.
    pub fn cifar(
        #[wasm_bindgen(unchecked_param_type = "{ name: string; bytes: Uint8Array }[]")]
        files: Array,
    ) -> Result<Dataset, JsValue> {
        let files = entries(&files)?;
        if files.is_empty() {
            return Err(data_error("no files given"));
        }
        let variant = if files
            .iter()
            .any(|(n, _)| n.ends_with("train.bin") || n == "test.bin")
        {
            Variant::Cifar100
        } else {
            Variant::Cifar10
        };
        let mut train = ImageSet::default();
        let mut test = ImageSet::default();
        for (name, bytes) in &files {
            let set = cifar::parse(bytes, variant, name).map_err(data_error)?;
            let is_test = name.contains("test");
            let target = if is_test { &mut test } else { &mut train };
            target.classes = set.classes.clone();
            target.extend(set);
        }
        if train.is_empty() {
            return Err(data_error(
                "none of the files is a training batch (data_batch_*.bin or train.bin)",
            ));
        }
        if test.is_empty() {
            (train, test) = train.split(HELD_OUT, HELD_OUT_SEED);
        }
        let name = format!("{variant:?} ({} train / {} test)", train.len(), test.len());
        Ok(Dataset {
            train: Rc::new(Images::Images(train)),
            test: Rc::new(Images::Images(test)),
            name,
        })
    }

    /// A dropped folder: `[{ name: "class/file.png", bytes }]`, the class being the folder
    /// name. Images are resized to 32x32; a random tenth is held out for testing.
    #[wasm_bindgen(js_name = fromImages)]
    pub fn from_images(
        #[wasm_bindgen(unchecked_param_type = "{ name: string; bytes: Uint8Array }[]")]
        files: Array,
    ) -> Result<Dataset, JsValue> {
        let files = entries(&files)?;
        let mut classes: Vec<String> = files
            .iter()
            .filter_map(|(name, _)| {
                name.rsplit_once('/')
                    .map(|(dir, _)| dir.rsplit('/').next().unwrap_or(dir).to_string())
            })
            .collect();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return Err(data_error(format!(
                "expected a folder with one sub-folder per class (at least 2 classes), found {}",
                classes.len()
            )));
        }
        let mut set = ImageSet {
            classes: classes.clone(),
            ..Default::default()
        };
        for (name, bytes) in &files {
            let Some((dir, _)) = name.rsplit_once('/') else {
                return Err(data_error(format!("{name}: not inside a class folder")));
            };
            let class = dir.rsplit('/').next().unwrap_or(dir);
            let label = classes
                .iter()
                .position(|c| c == class)
                .expect("class collected above");
            let image = crate::data::image::decode(bytes)
                .map_err(|e| data_error(format!("{name}: {e}")))?;
            set.labels.push(label as u32);
            set.pixels.extend(crate::data::image::to_cifar_size(&image));
        }
        let (train, test) = set.split(HELD_OUT, HELD_OUT_SEED);
        if test.is_empty() {
            return Err(data_error("too few images to hold out a test set"));
        }
        let name = format!(
            "folder ({} classes, {} train / {} test)",
            classes.len(),
            train.len(),
            test.len()
        );
        Ok(Dataset {
            train: Rc::new(Images::Images(train)),
            test: Rc::new(Images::Images(test)),
            name,
        })
    }

    /// Class names.
    #[wasm_bindgen(getter)]
    pub fn classes(&self) -> Vec<String> {
        self.train.classes()
    }

    /// Number of classes.
    #[wasm_bindgen(getter, js_name = numClasses)]
    pub fn num_classes(&self) -> usize {
        self.train.classes().len()
    }

    /// Training images.
    #[wasm_bindgen(getter, js_name = trainSize)]
    pub fn train_size(&self) -> usize {
        self.train.len()
    }

    /// Test images.
    #[wasm_bindgen(getter, js_name = testSize)]
    pub fn test_size(&self) -> usize {
        self.test.len()
    }

    /// A short description.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Test image `index` as RGBA pixels (32x32, for an `ImageData`) and its label.
    #[wasm_bindgen(js_name = testImage, unchecked_return_type = "{ rgba: Uint8ClampedArray; label: number }")]
    pub fn test_image(&self, index: usize) -> Result<JsValue, JsValue> {
        if index >= self.test.len() {
            return Err(js_error(
                Kind::Input,
                format!("test image {index} of {}", self.test.len()),
            ));
        }
        let (planar, labels) = self.test.batch(&[index]);
        let mut rgba = vec![255u8; 32 * 32 * 4];
        for i in 0..1024 {
            for c in 0..3 {
                rgba[i * 4 + c] = planar[c * 1024 + i];
            }
        }
        debug_assert_eq!(planar.len(), PIXELS);
        let out = js_sys::Object::new();
        js_sys::Reflect::set(&out, &"rgba".into(), &Uint8ClampedArray::from(&rgba[..]))?;
        js_sys::Reflect::set(&out, &"label".into(), &(labels[0] as u32).into())?;
        Ok(out.into())
    }

    /// A summary object (name, classes, sizes).
    pub fn describe(&self) -> JsValue {
        to_js(&serde_json::json!({
            "name": self.name,
            "classes": self.classes(),
            "trainSize": self.train_size(),
            "testSize": self.test_size(),
        }))
    }
}
