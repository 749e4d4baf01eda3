//! The training core on the CPU: it learns, it resumes exactly, it refuses to diverge silently.
#![cfg(not(target_family = "wasm"))]

use burn::tensor::Device;
use resnet::data::dataset::Dataset;
use resnet::data::synthetic::Shapes;
use resnet::io::{Normalization, Precision};
use resnet::model::arch;
use resnet::train::{LrPolicy, Schedule, SgdConfig, TrainConfig, TrainError, Trainer};

fn config(arch_name: &str, batch_size: usize, lr: f64, augment: bool) -> TrainConfig {
    TrainConfig {
        model: arch::parse(arch_name).unwrap().into(),
        sgd: SgdConfig::default(),
        lr: LrPolicy::new(lr, Schedule::Constant),
        batch_size,
        seed: 7,
        augment,
        label_smoothing: 0.0,
        normalization: Normalization {
            mean: [0.5; 3],
            std: [0.25; 3],
        },
        freeze_backbone: false,
        input_size: 32,
        accumulate: 1,
        amp: Default::default(),
    }
}

fn shapes(len: usize) -> Dataset {
    Dataset::Shapes(Shapes { seed: 1, len })
}

fn losses(trainer: &mut Trainer, data: &Dataset, steps: usize) -> Vec<f32> {
    (0..steps)
        .map(|_| pollster::block_on(trainer.step(data)).unwrap().loss)
        .collect()
}

/// A residual net and its plain twin both memorise one small batch.
#[test]
fn a_tiny_batch_is_overfitted_by_residual_and_plain_nets() {
    let data = shapes(16);
    for arch_name in ["resnet8", "plain8"] {
        let mut trainer =
            Trainer::new(config(arch_name, 16, 0.05, false), &data, &Device::flex()).unwrap();
        let losses = losses(&mut trainer, &data, 80);
        println!("{arch_name}: loss {:.3} → {:.4}", losses[0], losses[79]);
        assert!(
            losses[0] > 1.5,
            "{arch_name} starts near ln(10): {}",
            losses[0]
        );
        assert!(
            losses[79] < 0.1,
            "{arch_name} did not overfit: {:?}",
            &losses[70..]
        );
    }
}

/// Mixed precision trains: with its convolutions in f16 (from loss scale 2^16, halved at each
/// overflow) or bf16, ResNet-8 memorises the tiny batch as the f32 run does.
#[test]
fn a_tiny_batch_is_overfitted_with_convolutions_in_16_bits() {
    use resnet::model::amp::Amp;
    let data = shapes(16);
    for amp in [Amp::F16, Amp::Bf16] {
        let config = TrainConfig {
            amp,
            ..config("resnet8", 16, 0.05, false)
        };
        let mut trainer = Trainer::new(config, &data, &Device::flex()).unwrap();
        let steps: Vec<_> = (0..80)
            .map(|_| pollster::block_on(trainer.step(&data)).unwrap())
            .collect();
        let skipped = steps.iter().filter(|m| m.skipped).count();
        let (first, last) = (steps[0].loss, steps[79].loss);
        println!(
            "{amp:?}: loss {first:.3} → {last:.4}, {skipped} updates skipped, loss scale {:?}",
            steps[79].loss_scale
        );
        assert!(first > 1.5, "{amp:?} starts near ln(10): {first}");
        assert!(last < 0.1, "{amp:?} did not overfit: {:?}", &steps[70..]);
        assert!(skipped < 10, "{amp:?}: {skipped} of 80 updates skipped");
        assert_eq!(steps[79].loss_scale.is_some(), amp == Amp::F16);
    }
}

/// Snapshot after k steps, restore, and the next losses equal the uninterrupted run's.
#[test]
fn snapshot_then_restore_continues_with_the_same_losses() {
    let data = shapes(64);
    let device = Device::flex();
    let mut run = Trainer::new(config("resnet8", 8, 0.1, true), &data, &device).unwrap();
    losses(&mut run, &data, 9); // into the second epoch: the data order is mid-permutation
    let snapshot = pollster::block_on(run.snapshot()).unwrap();
    let uninterrupted = losses(&mut run, &data, 5);

    let mut restored = Trainer::restore(snapshot, &device).unwrap();
    assert_eq!(restored.step_count(), 9);
    assert_eq!(restored.epoch(), 1);
    let resumed = losses(&mut restored, &data, 5);
    assert_eq!(resumed, uninterrupted);
    // BN running statistics came through too: evaluation agrees.
    let a = pollster::block_on(run.evaluate(&data, None, 32)).unwrap();
    let b = pollster::block_on(restored.evaluate(&data, None, 32)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn the_same_seed_gives_the_same_losses() {
    let data = shapes(32);
    let a = losses(
        &mut Trainer::new(config("resnet8", 8, 0.1, true), &data, &Device::flex()).unwrap(),
        &data,
        4,
    );
    let b = losses(
        &mut Trainer::new(config("resnet8", 8, 0.1, true), &data, &Device::flex()).unwrap(),
        &data,
        4,
    );
    assert_eq!(a, b);
    let mut other = config("resnet8", 8, 0.1, true);
    other.seed = 8;
    let c = losses(
        &mut Trainer::new(other, &data, &Device::flex()).unwrap(),
        &data,
        4,
    );
    assert_ne!(a, c);
}

/// A diverging rate stops with the step and rate named, and the weights stay those of
/// the last good step.
#[test]
fn divergence_stops_training_and_keeps_the_last_good_weights() {
    let data = shapes(32);
    let mut trainer =
        Trainer::new(config("resnet8", 8, 1e6, false), &data, &Device::flex()).unwrap();
    // Every tensor (BN running statistics included) by name, as bytes.
    let weights = |t: &Trainer| -> Vec<(String, Vec<u8>)> {
        pollster::block_on(resnet::io::read_tensors(&t.model(), Precision::F32))
            .unwrap()
            .into_iter()
            .map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec()))
            .collect()
    };
    let mut last_good = weights(&trainer);
    let error = loop {
        match pollster::block_on(trainer.step(&data)) {
            Ok(_) => last_good = weights(&trainer),
            Err(err) => break err,
        }
        assert!(trainer.step_count() < 50, "a rate of 1e6 must diverge");
    };
    let TrainError::Diverged { step, lr, .. } = error.clone() else {
        panic!("{error}")
    };
    assert_eq!(step, trainer.step_count() + 1);
    assert_eq!(lr, 1e6);
    assert!(
        error.to_string().contains("try a lower learning rate"),
        "{error}"
    );
    // Nothing changed: the model is still the last good one.
    let now = weights(&trainer);
    let changed: Vec<&String> = now
        .iter()
        .zip(&last_good)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| &a.0)
        .collect();
    assert!(
        changed.is_empty(),
        "tensors changed by the diverged step: {changed:?}"
    );
}

#[test]
fn bad_setups_are_refused() {
    let data = shapes(16);
    let err = Trainer::new(config("resnet8", 32, 0.1, false), &data, &Device::flex())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("batch size must be between 1 and the 16"),
        "{err}"
    );
    let mut c = config("resnet8", 8, 0.1, false);
    c.model = c.model.with_num_classes(100);
    let err = Trainer::new(c, &data, &Device::flex()).err().unwrap();
    assert!(
        err.to_string()
            .contains("the data has 10 classes but the network has 100"),
        "{err}"
    );
    let err = Trainer::restore(b"not a snapshot".to_vec(), &Device::flex())
        .err()
        .unwrap();
    assert!(matches!(err, TrainError::Snapshot(_)), "{err}");
}

/// A few hundred steps of ResNet-20 on the embedded Shapes beat chance (90% error) by a
/// wide margin, and its plain twin trains too. (About 2 minutes on 2 CPU cores.)
///
/// The rate is 0.05 at batch 32, divided by 10 for the last 100 of 400 steps as the paper
/// does at a plateau. The test error after 400 steps, seeds 7 / 8 / 9 (2 cores with AVX-512,
/// 2026-11-29): 50.0%, 17.4%, 43.6%. The test used to stop at 250 steps (decay at 200), where
/// the error still falls by 10 points every 50 steps: there the same seeds gave 68.0%, 39.2%
/// and 65.4%, and seed 7 gave 45.6% on an earlier machine without AVX-512 (the flex kernels'
/// SIMD width changes the rounding, and 250 chaotic steps amplify it), so the 60% bar was a
/// coin toss from machine to machine. Without the decay the test error swings between 51%
/// and 70% from one 50-step window to the next. The first version of this test (batch 16 at
/// 0.1, eight times the paper's rate per image) does not learn at all: 87.6% after 250 steps,
/// loss stuck at ln 10. Training only the head on frozen random features stays at 88.6%.
#[test]
fn resnet20_and_plain20_learn_the_embedded_shapes() {
    let train = Dataset::Shapes(Shapes {
        len: 8_192,
        ..Shapes::train(2015)
    });
    let test = Dataset::Shapes(Shapes {
        len: 500,
        ..Shapes::test(2015)
    });
    // (The plain twin's 150 steps only check that its loss falls: no decay.)
    for (arch_name, steps) in [("resnet20", 400), ("plain20", 150)] {
        let mut c = config(arch_name, 32, 0.05, true);
        c.lr = LrPolicy::new(
            0.05,
            Schedule::Step {
                every: 300,
                gamma: 0.1,
            },
        );
        c.normalization = train.channel_statistics(2_000);
        let mut trainer = Trainer::new(c, &train, &Device::flex()).unwrap();
        let losses = losses(&mut trainer, &train, steps);
        let early: f32 = losses[..25].iter().sum::<f32>() / 25.0;
        let late: f32 = losses[steps - 25..].iter().sum::<f32>() / 25.0;
        println!("{arch_name}: train loss {early:.3} → {late:.3} over {steps} steps");
        // The plain twin's 150 steps are a seed lottery: with seeds 7, 8, 9 and 10 its loss
        // went to 0.80, 0.72, 0.87 and 0.97 of its start with burn's convolution and to 0.92,
        // 0.71, 0.87 and 0.82 with this crate's (equal to burn's within float rounding per
        // layer, which twenty BN layers amplify), so it is only held to falling.
        let factor = if arch_name == "resnet20" { 0.85 } else { 1.0 };
        assert!(late < early * factor, "{arch_name}: loss {early} → {late}");
        if arch_name == "resnet20" {
            let report = pollster::block_on(trainer.evaluate(&test, None, 250)).unwrap();
            println!(
                "{arch_name}: test top-1 error {:.1}%",
                report.top1_error * 100.0
            );
            // Seen here: 50.0% (seed 7). Chance is 90%.
            assert!(
                report.top1_error < 0.6,
                "{arch_name}: test error {}",
                report.top1_error
            );
            let total: u32 = report.confusion.iter().flatten().sum();
            assert_eq!(total, 500);
        }
    }
}

/// Fine-tuning with a frozen backbone trains the new head only.
#[test]
fn fine_tuning_a_frozen_backbone_changes_only_the_head() {
    use resnet::train::finetune::replace_head;
    let device = Device::flex();
    let data = shapes(16);
    // "Pre-trained" on 10 classes; fine-tuned on a 4-class subset relabelled.
    let source = arch::parse("resnet8").unwrap();
    let base = source.init(&device);
    let target = source.clone().with_num_classes(4);
    let model = replace_head(base.clone().into(), 4, &device);
    let four = Dataset::Images({
        let mut set = data.to_image_set();
        set.labels.iter_mut().for_each(|l| *l %= 4);
        set.classes = vec!["a".into(), "b".into(), "c".into(), "d".into()];
        set
    });
    let mut c = config("resnet8", 16, 0.1, false);
    c.model = target.into();
    c.freeze_backbone = true;
    let mut trainer = Trainer::with_model(c, model, four.classes(), four.len(), &device).unwrap();
    let losses = losses(&mut trainer, &four, 30);
    assert!(losses[29] < losses[0], "{losses:?}");
    let after = trainer.resnet().unwrap();
    let conv_before = base.layer2[0].conv1.weight.val().into_data();
    assert_eq!(
        after.layer2[0].conv1.weight.val().into_data(),
        conv_before,
        "the backbone moved"
    );
    assert_eq!(after.num_classes(), 4);
    let last = pollster::block_on(trainer.step(&four)).unwrap();
    assert_eq!(last.grad_norms.len(), trainer.layers().len());
    assert_eq!(
        last.grad_norms[0], 0.0,
        "frozen layers report a zero gradient"
    );
    assert!(*last.grad_norms.last().unwrap() > 0.0, "the head learns");

    // A snapshot remembers the frozen backbone: the restored run still trains the head only.
    let snapshot = pollster::block_on(trainer.snapshot()).unwrap();
    let mut restored = Trainer::restore(snapshot, &device).unwrap();
    assert!(restored.config().freeze_backbone);
    let next = pollster::block_on(restored.step(&four)).unwrap();
    assert_eq!(next.grad_norms[0], 0.0, "the restored backbone is frozen");
    assert_eq!(
        restored.resnet().unwrap().layer2[0]
            .conv1
            .weight
            .val()
            .into_data(),
        conv_before,
        "the restored backbone moved"
    );
}

/// The weights a trainer exports are its eval-mode network: a `Classifier` built from them
/// gives the same probabilities on the same test images.
#[test]
fn exported_weights_classify_like_the_trainer() {
    use burn::tensor::{Tensor, TensorData};
    let device = Device::flex();
    let data = shapes(8);
    let mut trainer = Trainer::new(config("resnet8", 4, 0.1, true), &data, &device).unwrap();
    losses(&mut trainer, &data, 4);
    let card = trainer.card(None);
    let bytes = pollster::block_on(resnet::io::to_bytes_async(
        &trainer.model(),
        &card,
        Precision::F32,
    ))
    .unwrap();
    let classifier = resnet::infer::Classifier::load(
        resnet::io::WeightsFile::from_bytes(bytes, "exported").unwrap(),
        None,
        &device,
    )
    .unwrap();
    let (pixels, _) = data.batch(&[0, 1, 2]);
    let n = &card.normalization;
    let x =
        resnet::data::augment::normalize(pixels.clone(), [3, 3, 32, 32], n.mean, n.std, &device);
    // The classifier folds BN into the convolutions; so does this side, so that any
    // difference is the export's (model/fold.rs tests folding against the unfolded net).
    let a = resnet::model::FoldedResNet::new(&trainer.resnet().unwrap())
        .forward(x.clone())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let b = classifier
        .logits(x)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    assert_eq!(a, b, "same network, same logits");
    // And through the image path (decode-free RGB → views → normalisation on the CPU).
    for i in 0..3 {
        let image = image::RgbImage::from_fn(32, 32, |x, y| {
            let at = (y * 32 + x) as usize;
            image::Rgb([
                pixels[i * 3072 + at],
                pixels[i * 3072 + 1024 + at],
                pixels[i * 3072 + 2048 + at],
            ])
        });
        let result = pollster::block_on(classifier.classify(
            &image,
            resnet::data::views::TestView::Center,
            10,
        ))
        .unwrap();
        let logits = Tensor::<1>::from_data(
            TensorData::new(a[i * 10..(i + 1) * 10].to_vec(), [10]),
            &device,
        );
        let p = burn::tensor::activation::softmax(logits, 0)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        for prediction in &result.predictions {
            let diff = (prediction.probability - p[prediction.index]).abs();
            assert!(
                diff < 1e-5,
                "image {i}, class {}: {} vs {}",
                prediction.index,
                prediction.probability,
                p[prediction.index]
            );
        }
    }
}

/// The memory check shared by `resnet train` and the browser's CPU fallback: a batch over the
/// budget is refused with the largest batch that fits.
#[test]
fn a_batch_over_the_memory_budget_is_refused_with_the_largest_that_fits() {
    use resnet::train::check_batch_memory;
    let model = resnet::model::arch::parse("resnet20").unwrap().into();
    let budget = resnet::model::training_bytes(&model, 32, 10);
    assert!(check_batch_memory(&model, 32, 10, budget, "the test budget").is_ok());
    let message = check_batch_memory(&model, 32, 64, budget, "the test budget")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("a batch of 64") && message.contains("resnet20"),
        "{message}"
    );
    assert!(message.ends_with("use a batch of 10 or less"), "{message}");
    let message = check_batch_memory(&model, 32, 8, 1000, "a tiny budget")
        .unwrap_err()
        .to_string();
    assert!(message.contains("even one image does not fit"), "{message}");
}

/// A DenseNet-BC trains on the same core as the ResNets: it memorises a small batch, its
/// layers are named by DenseNet's own paths (no enum level), a snapshot restores it to the
/// uninterrupted run's next losses (momentum keyed by those paths), and the lesion study it
/// has no blocks for is refused by name.
#[test]
fn a_densenet_trains_snapshots_and_restores_like_a_resnet() {
    let device = Device::flex();
    let data = shapes(16);
    let mut c = config("resnet8", 16, 0.05, false);
    c.model = resnet::model::network::parse("densenet_bc16_4")
        .unwrap()
        .with_num_classes(10);
    let mut trainer = Trainer::new(c, &data, &device).unwrap();
    assert_eq!(trainer.layers()[0], "features.conv0");
    let first = losses(&mut trainer, &data, 5);
    let snapshot = pollster::block_on(trainer.snapshot()).unwrap();
    let mut restored = Trainer::restore(snapshot, &device).unwrap();
    let (a, b) = (
        losses(&mut trainer, &data, 3),
        losses(&mut restored, &data, 3),
    );
    assert_eq!(
        a, b,
        "the restored DenseNet diverged from the uninterrupted run"
    );
    let rest = losses(&mut trainer, &data, 52);
    println!("densenet_bc16_4: loss {:.3} → {:.4}", first[0], rest[51]);
    assert!(rest[51] < 0.3 * first[0], "{first:?} … {:?}", &rest[45..]);
    let err = trainer.resnet().unwrap_err().to_string();
    assert!(
        err.contains("densenet_bc16_4 has no residual blocks"),
        "{err}"
    );
}

/// Gradient accumulation: one update over two batches of 4 moves the weights by the mean of
/// the two single-batch updates (momentum and decay off, so an update is `-lr × gradient`),
/// and an epoch has half as many updates.
#[test]
fn accumulated_batches_update_by_the_mean_of_their_gradients() {
    let data = shapes(16);
    let plain_sgd = |accumulate| TrainConfig {
        sgd: SgdConfig {
            momentum: 0.0,
            weight_decay: 0.0,
            ..SgdConfig::default()
        },
        accumulate,
        ..config("resnet8", 4, 0.1, false)
    };
    let weights = |trainer: &Trainer| match trainer.model() {
        resnet::model::Network::ResNet(model) => model
            .fc
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        _ => unreachable!(),
    };
    let device = Device::flex();
    let mut accumulated = Trainer::new(plain_sgd(2), &data, &device).unwrap();
    assert_eq!(accumulated.steps_per_epoch(), 2);
    let before = weights(&accumulated);
    pollster::block_on(accumulated.step(&data)).unwrap();
    assert_eq!(accumulated.step_count(), 1);
    // The first batch alone, and the second alone (the first passed with a zero rate).
    let mut first = Trainer::new(plain_sgd(1), &data, &device).unwrap();
    pollster::block_on(first.step(&data)).unwrap();
    let mut second = Trainer::new(plain_sgd(1), &data, &device).unwrap();
    let sgd = second.config().sgd.clone();
    second.set_hyperparameters(sgd.clone(), LrPolicy::new(0.0, Schedule::Constant));
    pollster::block_on(second.step(&data)).unwrap();
    second.set_hyperparameters(sgd, LrPolicy::new(0.1, Schedule::Constant));
    pollster::block_on(second.step(&data)).unwrap();
    let (a, w1, w2) = (weights(&accumulated), weights(&first), weights(&second));
    let mut worst = 0.0f32;
    for i in 0..a.len() {
        let expected = before[i] + ((w1[i] - before[i]) + (w2[i] - before[i])) / 2.0;
        worst = worst.max((a[i] - expected).abs());
    }
    let moved = (0..a.len())
        .map(|i| (a[i] - before[i]).abs())
        .fold(0.0, f32::max);
    assert!(moved > 1e-3, "the update moved the weights by {moved}");
    assert!(
        worst < 1e-6,
        "off by {worst} (the update moved them by {moved})"
    );
}

/// Data parallelism: the two batches of an accumulated update run on two replicas (two flex
/// devices, each on its own thread) give the update the single device gives (momentum and
/// decay on, two updates); devices that cannot share an update evenly are refused.
#[test]
fn two_replicas_update_like_one_device_accumulating_their_batches() {
    let data = shapes(32);
    let accumulating = || TrainConfig {
        accumulate: 2,
        ..config("resnet8", 4, 0.1, true)
    };
    let weights = |trainer: &Trainer| match trainer.model() {
        resnet::model::Network::ResNet(model) => {
            let mut all = model
                .fc
                .weight
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            all.extend(
                model
                    .conv1
                    .weight
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap(),
            );
            all
        }
        _ => unreachable!(),
    };
    let device = Device::flex();
    let mut one = Trainer::new(accumulating(), &data, &device).unwrap();
    let mut two = Trainer::new(accumulating(), &data, &device).unwrap();
    two.set_devices(vec![Device::flex(), Device::flex()])
        .unwrap();
    let before = weights(&one);
    for _ in 0..2 {
        let (a, b) = (
            pollster::block_on(one.step(&data)).unwrap(),
            pollster::block_on(two.step(&data)).unwrap(),
        );
        assert!((a.loss - b.loss).abs() < 1e-5, "{} vs {}", a.loss, b.loss);
    }
    let (a, b) = (weights(&one), weights(&two));
    let worst = (0..a.len())
        .map(|i| (a[i] - b[i]).abs())
        .fold(0.0, f32::max);
    let moved = (0..a.len())
        .map(|i| (a[i] - before[i]).abs())
        .fold(0.0, f32::max);
    assert!(moved > 1e-3, "the updates moved the weights by {moved}");
    assert!(
        worst < 1e-5,
        "off by {worst} (the updates moved them by {moved})"
    );

    let mut uneven = Trainer::new(config("resnet8", 4, 0.1, true), &data, &device).unwrap();
    let err = uneven
        .set_devices(vec![Device::flex(), Device::flex()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("accumulate a multiple of 2"), "{err}");
}
