//! Why residual learning works, measured on the user's own net: the lesion study of Veit et
//! al. 2016 ("Residual networks behave like ensembles of relatively shallow networks").
//!
//! Deleting one block of a ResNet (keeping its shortcut) should barely change its test error,
//! because the net behaves like an ensemble of paths of many lengths, most of which skip that
//! block; deleting one block of its plain twin breaks the only path there is. The same code
//! serves `resnet analyse`, `trainer.lesion()` in the npm package and the page's plot.

use burn::tensor::Device;
use serde::Serialize;

use super::config::TrainError;
use super::evaluate::{Logits, evaluate_logits};
use crate::data::dataset::Dataset;
use crate::data::views::TestView;
use crate::io::Normalization;
use crate::model::{FoldedResNet, ResNet};

/// The test error with each block deleted in turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LesionReport {
    /// Test images each error is measured on.
    pub images: usize,
    /// Top-1 error of the intact net, in [0, 1].
    pub intact_error: f32,
    /// One entry per block, in forward order.
    pub blocks: Vec<Lesion>,
}

/// One deleted block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lesion {
    /// The block's name in the weights (`layer2.0`).
    pub block: String,
    /// Whether the block changes the resolution (its shortcut subsamples or projects), which
    /// Veit et al. single out: deleting those hurts a ResNet more.
    pub downsampling: bool,
    /// Top-1 error without this block, in [0, 1].
    pub top1_error: f32,
}

/// Deletes each block of `model` in turn and measures the top-1 error (center view, eval
/// mode) on at most `limit` images of `data`: `blocks + 1` evaluations.
pub async fn lesion(
    model: &ResNet,
    normalization: &Normalization,
    data: &Dataset,
    limit: Option<usize>,
    batch_size: usize,
    device: &Device,
) -> Result<LesionReport, TrainError> {
    let names: Vec<(String, bool)> = model
        .named_blocks()
        .into_iter()
        .map(|(name, block)| (name, block.stride > 1))
        .collect();
    let folded = FoldedResNet::new(model);
    let evaluate = async |net: &FoldedResNet| {
        let forward = |x| net.forward(x);
        let logits = Logits {
            forward: &forward,
            classes: net.num_classes(),
        };
        evaluate_logits(
            &logits,
            normalization,
            data,
            limit,
            batch_size,
            TestView::Center,
            device,
        )
        .await
    };
    let intact = evaluate(&folded).await?;
    let mut blocks = Vec::with_capacity(names.len());
    for (index, (block, downsampling)) in names.into_iter().enumerate() {
        let lesioned = folded
            .without_block(index)
            .expect("one folded block per block");
        let report = evaluate(&lesioned).await?;
        blocks.push(Lesion {
            block,
            downsampling,
            top1_error: report.top1_error,
        });
    }
    Ok(LesionReport {
        images: intact.images,
        intact_error: intact.top1_error,
        blocks,
    })
}

// Native only: the tests block on the async API with pollster.
#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::*;
    use crate::data::synthetic::Shapes;
    use crate::model::arch::parse;

    fn data() -> Dataset {
        Dataset::Shapes(Shapes {
            len: 64,
            ..Shapes::test(7)
        })
    }

    /// With zero-init residuals every block of a ResNet is `relu(shortcut(x))` already, so
    /// deleting any of them changes nothing; a plain net's blocks then output zeros, and
    /// deleting one (restoring its input) changes the logits.
    #[test]
    fn lesions_of_identity_blocks_change_nothing() {
        let device = Device::flex();
        let data = data();
        let norm = Normalization::CIFAR10;
        let config = parse("resnet20").unwrap().with_zero_init_residual(true);
        let report = pollster::block_on(lesion(
            &config.init(&device),
            &norm,
            &data,
            None,
            32,
            &device,
        ))
        .unwrap();
        assert_eq!(report.images, 64);
        let names: Vec<&str> = report.blocks.iter().map(|l| l.block.as_str()).collect();
        assert_eq!(names[..4], ["layer1.0", "layer1.1", "layer1.2", "layer2.0"]);
        assert_eq!(report.blocks.len(), 9);
        let downsampling: Vec<bool> = report.blocks.iter().map(|l| l.downsampling).collect();
        assert_eq!(downsampling.iter().filter(|&&d| d).count(), 2);
        assert!(downsampling[3] && downsampling[6]);
        for l in &report.blocks {
            assert_eq!(l.top1_error, report.intact_error, "{}", l.block);
        }
    }

    /// Replaces every parameter with values from the crate's seeded generator (the device's
    /// generator is shared by tests running in parallel, so its draws are not reproducible):
    /// He-scaled convolutions and classifier, affine parameters near 1.
    struct Seeded(crate::data::rng::Rng);

    impl burn::module::ModuleMapper for Seeded {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<burn::tensor::Tensor<D>>,
        ) -> burn::module::Param<burn::tensor::Tensor<D>> {
            let tensor = param.val();
            let dims = tensor.dims();
            let (scale, offset) = match D {
                4 => ((2.0 / (dims[0] * dims[2] * dims[3]) as f32).sqrt(), 0.0),
                2 => ((1.0 / dims[0] as f32).sqrt(), 0.0),
                _ => (0.1, 1.0),
            };
            let values: Vec<f32> = (0..dims.iter().product::<usize>())
                .map(|_| offset + scale * self.0.normal())
                .collect();
            let data = burn::tensor::TensorData::new(values, dims);
            burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(
                data,
                &tensor.device(),
            ))
        }
    }

    /// Each entry is the error of the net with that block (and only that block) deleted, in
    /// forward order, and the intact error is the unlesioned net's: checked against
    /// evaluations of `FoldedResNet::without_block` one by one, on a seeded net whose lesions
    /// all score differently (so a shifted index or a lesioned "intact" net shows).
    #[test]
    fn each_entry_is_its_own_block_deleted() {
        use burn::module::Module;
        let device = Device::flex();
        let data = Dataset::Shapes(Shapes {
            len: 320,
            ..Shapes::test(7)
        });
        let norm = Normalization::CIFAR10;
        let model = parse("resnet8")
            .unwrap()
            .init(&device)
            .map(&mut Seeded(crate::data::rng::Rng::new(5, 5)));
        let report = pollster::block_on(lesion(&model, &norm, &data, None, 64, &device)).unwrap();
        let folded = FoldedResNet::new(&model);
        let error = |net: &FoldedResNet| {
            let forward = |x| net.forward(x);
            let logits = Logits {
                forward: &forward,
                classes: net.num_classes(),
            };
            pollster::block_on(evaluate_logits(
                &logits,
                &norm,
                &data,
                None,
                64,
                TestView::Center,
                &device,
            ))
            .unwrap()
            .top1_error
        };
        assert_eq!(report.intact_error, error(&folded));
        let expected: Vec<f32> = (0..3)
            .map(|i| error(&folded.without_block(i).unwrap()))
            .collect();
        let got: Vec<f32> = report.blocks.iter().map(|l| l.top1_error).collect();
        assert_eq!(got, expected);
        // The case has teeth: the intact net and the three lesions all score differently
        // (89.1 % intact; 87.8, 89.4, 90.6 % without layer1.0, layer2.0, layer3.0).
        let mut all = expected.clone();
        all.push(report.intact_error);
        all.sort_by(f32::total_cmp);
        all.dedup();
        assert_eq!(all.len(), 4, "{expected:?} and {}", report.intact_error);
    }
}
