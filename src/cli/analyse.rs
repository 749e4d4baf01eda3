//! `resnet analyse`: why residual learning works, on a trained model — the lesion study of
//! Veit et al. 2016 (test error with each block deleted in turn).

use std::path::PathBuf;

use clap::Args;

use super::eval::load_model;
use super::train::DataArgs;
use super::{DeviceArgs, ModelArgs};
use crate::Error;

/// `resnet analyse`.
#[derive(Args, Debug)]
pub struct AnalyseArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A run directory, a checkpoint, or weights (.bpk, .pth, .safetensors).
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Measure each error on at most this many test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn analyse(args: AnalyseArgs) -> Result<(), Error> {
    let data = args.data.load()?;
    let device = args.device.device.device().map_err(Error::Device)?;
    let (model, card) = load_model(&args.weights, &args.model, &device)?;
    if card.config.num_classes != data.test.classes().len() {
        return Err(Error::Other(format!(
            "{}: the model has {} classes, the data {}",
            args.weights.display(),
            card.config.num_classes,
            data.test.classes().len()
        )));
    }
    let report = pollster::block_on(crate::train::analyse::lesion(
        &model,
        &card.normalization,
        &data.test,
        args.limit,
        128,
        &device,
    ))
    .map_err(|e| Error::Other(e.to_string()))?;
    if args.json {
        let mut value = serde_json::to_value(&report).expect("report serialises");
        value["arch"] = card.config.name().into();
        println!("{value}");
        return Ok(());
    }
    println!(
        "{} on {} ({} images): top-1 error {:.2}% intact; with one block deleted (its shortcut kept):",
        card.config.name(),
        data.description,
        report.images,
        report.intact_error * 100.0
    );
    for lesion in &report.blocks {
        println!(
            "  {:<10} {:>6.2}%  ({:+.2} points){}",
            lesion.block,
            lesion.top1_error * 100.0,
            (lesion.top1_error - report.intact_error) * 100.0,
            if lesion.downsampling {
                "  downsampling"
            } else {
                ""
            }
        );
    }
    Ok(())
}
