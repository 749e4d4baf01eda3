//! `resnet analyse`: why residual learning works, on a trained (or freshly initialised) model:
//! the lesion study of Veit et al. 2016 (test error with each block deleted in turn) and the
//! shattered-gradients measurement of Balduzzi et al. 2017 (how alike the input gradients of
//! nearby inputs stay with depth).

use std::path::PathBuf;

use clap::Args;

use super::eval::load_model;
use super::train::DataArgs;
use super::{DeviceArgs, ModelArgs};
use crate::Error;
use crate::io::ModelCard;
use crate::train::correlation::{DEFAULT_IMAGES, DEFAULT_NOISE, gradient_correlation};

/// `resnet analyse`.
#[derive(Args, Debug)]
pub struct AnalyseArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A run directory, a checkpoint, or weights (.bpk, .pth, .safetensors); without it, a
    /// freshly initialised `--arch` (He init, as in Balduzzi et al.'s measurements).
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Measure each lesion's error on at most this many test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Images the gradient correlation averages over.
    #[arg(long, default_value_t = DEFAULT_IMAGES)]
    images: usize,
    /// Standard deviation of the perturbation between the two nearby inputs (normalised units).
    #[arg(long, default_value_t = DEFAULT_NOISE)]
    noise: f32,
    /// Print one JSON object: `{ arch, lesion, gradients }`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn analyse(args: AnalyseArgs) -> Result<(), Error> {
    let data = args.data.load()?;
    let device = args.device.device.device().map_err(Error::Device)?;
    let (model, card) = match &args.weights {
        Some(weights) => {
            let (model, card) = load_model(weights, &args.model, &device)?;
            match model {
                crate::model::Network::ResNet(model) => (model, card),
                // Lesions delete residual blocks; a DenseNet or Inception-ResNet has none of
                // this tree's blocks.
                _ => return Err(super::not_a_resnet(&card.config.name())),
            }
        }
        None => {
            let config = args.model.required_config()?;
            (config.init(&device), ModelCard::for_config(config))
        }
    };
    if card.config.num_classes() != data.test.classes().len() {
        return Err(Error::Other(format!(
            "the model has {} classes, the data {}",
            card.config.num_classes(),
            data.test.classes().len()
        )));
    }
    let failed = |e: crate::train::TrainError| Error::Other(e.to_string());
    let lesion = pollster::block_on(crate::train::analyse::lesion(
        &model,
        &card.normalization,
        &data.test,
        args.limit,
        128,
        &device,
    ))
    .map_err(failed)?;
    let gradients = pollster::block_on(gradient_correlation(
        &model,
        &card.normalization,
        &data.test,
        args.images,
        args.noise,
        &device,
    ))
    .map_err(failed)?;
    if args.json {
        let value = serde_json::json!({
            "arch": card.config.name(),
            "lesion": lesion,
            "gradients": gradients,
        });
        println!("{value}");
        return Ok(());
    }
    println!(
        "{} on {} ({} images): top-1 error {:.2}% intact; with one block deleted (its shortcut kept):",
        card.config.name(),
        data.description,
        lesion.images,
        lesion.intact_error * 100.0
    );
    for l in &lesion.blocks {
        println!(
            "  {:<10} {:>6.2}%  ({:+.2} points){}",
            l.block,
            l.top1_error * 100.0,
            (l.top1_error - lesion.intact_error) * 100.0,
            if l.downsampling { "  downsampling" } else { "" }
        );
    }
    println!(
        "Correlation of the input gradients of nearby inputs (perturbation σ = {}, {} images):",
        gradients.noise, gradients.images
    );
    for b in &gradients.blocks {
        println!(
            "  {:<10} depth {:>4}  {:+.3}",
            b.block, b.depth, b.correlation
        );
    }
    Ok(())
}
