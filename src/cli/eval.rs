//! `resnet eval` and `resnet export`: a trained model (weights file, checkpoint or run
//! directory) measured on test data, or written out for the page.

use std::path::{Path, PathBuf};

use burn::module::Module;
use clap::Args;

use super::train::DataArgs;
use super::{DeviceArgs, ModelArgs};
use crate::Error;
use crate::data::views::TestView;
use crate::io::{ModelCard, Precision, WeightsFile};
use crate::train::Trainer;
use crate::train::learner::RunDir;

/// `resnet eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Weights: .bpk (a model or a checkpoint), .pth or .safetensors.
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Test-time views, comma-separated or `all`: center, ten-crop (corners, center, flips;
    /// CIFAR-sized images padded by 4 first) and multi-scale (full-size images only: shorter
    /// side 224, 256, 384, 480 and 640, and flips).
    #[arg(long, default_value = "center")]
    crop: Views,
    /// Evaluate at most this many test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The test views of `--crop`: `center`, `ten-crop,multi-scale`, `all`, …
#[derive(Debug, Clone)]
struct Views(Vec<TestView>);

impl std::str::FromStr for Views {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "all" {
            return Ok(Views(vec![
                TestView::Center,
                TestView::TenCrop,
                TestView::MultiScale,
            ]));
        }
        text.split(',')
            .map(|v| v.trim().parse())
            .collect::<Result<_, _>>()
            .map(Views)
    }
}

pub fn eval(args: EvalArgs) -> Result<(), Error> {
    let device = args.device.device.device().map_err(Error::Device)?;
    let (model, card) = load_model(&args.weights, &args.model, &device)?;
    // A streamed set is cut at the model's input size; 32x32 data must be what it takes.
    let data = args
        .data
        .load()?
        .with_views(card.input_size, Default::default());
    if data.test.image_size() != card.input_size {
        return Err(Error::Other(format!(
            "{} takes {1}x{1} images but {2} holds {3}x{3} ones: evaluate it on full-size \
             images (--data imagenet:DIR)",
            card.config.name(),
            card.input_size,
            data.description,
            data.test.image_size()
        )));
    }
    if card.config.num_classes() != data.test.classes().len() {
        return Err(Error::Other(format!(
            "{}: the model has {} classes, the data {}",
            args.weights.display(),
            card.config.num_classes(),
            data.test.classes().len()
        )));
    }
    for &view in &args.crop.0 {
        let report = pollster::block_on(crate::train::evaluate::evaluate_views(
            &model,
            &card.normalization,
            &data.test,
            args.limit,
            128,
            view,
            &device,
        ))
        .map_err(|e| Error::Other(e.to_string()))?;
        if args.json {
            let mut value = serde_json::to_value(&report).expect("report serialises");
            value["classes"] = serde_json::json!(data.test.classes());
            value["crop"] = format!("{view:?}").into();
            println!("{value}");
            continue;
        }
        println!(
            "{} on {} ({} images, {view:?}): top-1 error {:.2}%, top-5 error {:.2}%, loss {:.4}",
            card.config.name(),
            data.description,
            report.images,
            report.top1_error * 100.0,
            report.top5_error * 100.0,
            report.loss
        );
        if report.skipped > 0 {
            println!(
                "{} images could not be decoded and were left out",
                report.skipped
            );
        }
        if args.crop.0.len() == 1 {
            print_confusion(&data.test.classes(), &report.confusion);
        }
    }
    Ok(())
}

fn print_confusion(classes: &[String], confusion: &[Vec<u32>]) {
    if classes.len() > 20 {
        println!(
            "(confusion matrix omitted for {} classes: use --json)",
            classes.len()
        );
        return;
    }
    // Row labels up to 12 characters; column headers cut to 6 so ten classes fit 80 columns.
    // Cut by characters, not bytes: class folders can have any (UTF-8) name.
    let cut = |c: &str, n: usize| c.chars().take(n).collect::<String>();
    let width = classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(9, 12);
    print!("{:>width$} ", "true\\pred");
    for c in classes {
        print!(" {:>6}", cut(c, 6));
    }
    println!();
    for (c, row) in classes.iter().zip(confusion) {
        print!("{:>width$} ", cut(c, width));
        for v in row {
            print!(" {v:>6}");
        }
        println!();
    }
}

/// A model from a weights file or a training checkpoint / run directory.
pub fn load_model(
    path: &Path,
    args: &ModelArgs,
    device: &burn::tensor::Device,
) -> Result<(crate::model::Network, ModelCard), Error> {
    // A misspelt --arch is named before a large weights file is read.
    let config = args.net_config()?;
    let path = if path.is_dir() {
        RunDir(path.to_path_buf()).checkpoint()
    } else {
        path.to_path_buf()
    };
    let bytes =
        std::fs::read(&path).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    if let Ok(trainer) = Trainer::restore(bytes, device) {
        let card = trainer.card(Some(format!(
            "{} at step {}",
            trainer.config().model.name(),
            trainer.step_count()
        )));
        return Ok((trainer.model().to_device(device).into(), card));
    }
    let classifier = crate::infer::Classifier::load(WeightsFile::open(&path)?, config, device)?;
    Ok((classifier.model().clone(), classifier.card().clone()))
}

/// `resnet export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory or a checkpoint file.
    source: PathBuf,
    /// Where to write the Burnpack file for the page and `Classifier.load`.
    #[arg(long)]
    out: PathBuf,
    /// Store 16-bit floats (half the size).
    #[arg(long)]
    f16: bool,
}

pub fn export(args: ExportArgs) -> Result<(), Error> {
    let device = burn::tensor::Device::flex();
    let checkpoint = if args.source.is_dir() {
        RunDir(args.source.clone()).checkpoint()
    } else {
        args.source.clone()
    };
    let bytes = std::fs::read(&checkpoint)
        .map_err(|e| Error::Other(format!("{}: {e}", checkpoint.display())))?;
    let trainer = Trainer::restore(bytes, &device)
        .map_err(|e| Error::Other(format!("{}: {e}", checkpoint.display())))?;
    let description = format!(
        "{} trained {} steps (exported from {})",
        trainer.config().model.name(),
        trainer.step_count(),
        checkpoint.display()
    );
    let precision = if args.f16 {
        Precision::F16
    } else {
        Precision::F32
    };
    crate::io::save(
        &trainer.model(),
        &trainer.card(Some(description)),
        &args.out,
        precision,
    )?;
    println!(
        "{} (step {}) written to {}",
        trainer.config().model.name(),
        trainer.step_count(),
        args.out.display()
    );
    Ok(())
}
