//! The run loop every face drives (the CLI's run directory and the page's `Trainer`): its
//! cadence, the plateau schedule it feeds, divergence of one net beside its twin, queued
//! hyper-parameter changes, and snapshots that are checked before they are trusted.
#![cfg(not(target_family = "wasm"))]

use std::cell::Cell;

use burn::tensor::Device;
use resnet::data::dataset::Dataset;
use resnet::data::synthetic::Shapes;
use resnet::io::Normalization;
use resnet::train::recipe::{OptimizerSpec, ScheduleKind, ScheduleSpec};
use resnet::train::session::{Cadence, EpochMeans, HyperparameterChange, Net};
use resnet::train::{Event, RunSpec, Session, TrainError, Trainer};

fn shapes(seed: u64, len: usize) -> Dataset {
    Dataset::Shapes(Shapes { seed, len })
}

thread_local!(static NOW: Cell<f64> = const { Cell::new(0.0) });

/// A clock that advances 10 ms per reading: deterministic images/s and snapshot timing.
fn clock() -> f64 {
    NOW.with(|t| {
        t.set(t.get() + 10.0);
        t.get()
    })
}

/// A session over the given nets ("residual" and/or "plain" of resnet8) built from `spec`.
fn session(spec: RunSpec, names: &[&str], train: &Dataset) -> Session {
    let classes = train.classes().len();
    let nets = names
        .iter()
        .map(|&name| {
            let model = spec
                .model(classes)
                .unwrap()
                .resnet()
                .unwrap()
                .clone()
                .with_residual(name == "residual");
            let config = spec
                .train_config(model, train.len(), Normalization::CIFAR10)
                .unwrap();
            let trainer = Trainer::new(config, train, &Device::flex()).unwrap();
            Net::new(name, trainer, EpochMeans::default())
        })
        .collect();
    let cadence = Cadence::from_spec(&spec, train.len());
    Session::new(spec, nets, cadence, clock)
}

fn run_all(session: &mut Session, train: &Dataset, test: &Dataset) -> Vec<Event> {
    let mut events = Vec::new();
    while !pollster::block_on(session.round(train, test, &mut |e| events.push(e))).unwrap() {}
    events
}

fn tiny(iterations: usize) -> RunSpec {
    RunSpec {
        arch: "resnet8".into(),
        batch_size: 8,
        iterations: Some(iterations),
        eval_every: 4,
        eval_limit: Some(16),
        checkpoint_every: 5,
        augment: false,
        ..RunSpec::default()
    }
}

/// Steps, epochs, evaluations and snapshots come when the cadence says, for both nets.
#[test]
fn the_cadence_decides_evaluations_snapshots_and_the_end() {
    let (train, test) = (shapes(1, 32), shapes(2, 16));
    let mut s = session(tiny(10), &["residual", "plain"], &train);
    let events = run_all(&mut s, &train, &test);
    let of = |kind: &str, net: &str| -> Vec<usize> {
        events
            .iter()
            .filter_map(|e| match (e, kind) {
                (
                    Event::Step {
                        net: n, metrics, ..
                    },
                    "step",
                ) if n == net => Some(metrics.step),
                (Event::Eval { net: n, step, .. }, "eval") if n == net => Some(*step),
                (Event::Epoch { net: n, summary }, "epoch") if n == net => Some(summary.step),
                _ => None,
            })
            .collect()
    };
    for net in ["residual", "plain"] {
        assert_eq!(of("step", net), (1..=10).collect::<Vec<_>>(), "{net}");
        // Every 4 steps and at the last one.
        assert_eq!(of("eval", net), vec![4, 8, 10], "{net}");
        // 32 images / batch 8 = 4 steps per epoch; the run ends mid-epoch at 10.
        assert_eq!(of("epoch", net), vec![4, 8, 10], "{net}");
    }
    let snapshots: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Snapshot { step } => Some(*step),
            _ => None,
        })
        .collect();
    // At epoch ends (4, 8), every 5 steps and at the end (10).
    assert_eq!(snapshots, vec![4, 5, 8, 10]);
    assert!(matches!(events.last(), Some(Event::Finished { step: 10 })));
    // Both nets saw the same data order: their first step's top-1 error is on the same batch.
    assert!(s.is_finished());
}

/// The plateau schedule lowers the rate when the evaluated error stops improving — the
/// loop feeds it, whichever face drives the loop (the page's npm API included).
#[test]
fn the_loop_feeds_the_plateau_schedule() {
    let (train, test) = (shapes(1, 16), shapes(2, 16));
    // A threshold of 1 counts every evaluation after the first as "no improvement" and a
    // patience of 0 decays at once: the rates show exactly which evaluations reached it.
    let spec = RunSpec {
        schedule: ScheduleSpec {
            kind: Some(ScheduleKind::Plateau),
            patience: 0,
            threshold: 1.0,
            ..ScheduleSpec::default()
        },
        eval_every: 1,
        ..tiny(4)
    };
    let mut s = session(spec, &["residual"], &train);
    let events = run_all(&mut s, &train, &test);
    let rates = step_rates(&events);
    // Evaluated after every step: the first sets the best, each later one decays ÷10.
    let expected = [0.1, 0.1, 0.01, 0.001];
    assert_eq!(rates.len(), 4);
    for (rate, want) in rates.iter().zip(expected) {
        assert!(
            (rate - want).abs() < 1e-12,
            "rates {rates:?}, expected {expected:?}"
        );
    }
}

/// A net that diverges stops and is reported; its twin trains on to the end.
#[test]
fn a_diverging_net_stops_while_its_twin_goes_on() {
    let (train, test) = (shapes(1, 16), shapes(2, 8));
    let spec = RunSpec {
        optimizer: OptimizerSpec {
            lr: Some(1e6),
            ..OptimizerSpec::default()
        },
        // A rate of 1e6 diverges within 50 steps (tests/train.rs).
        ..tiny(50)
    };
    let mut s = session(spec, &["plain"], &train);
    // A sane twin beside it, on the same data.
    let sane = session(tiny(50), &["residual"], &train).nets.remove(0);
    s.nets.insert(0, sane);
    let events = run_all(&mut s, &train, &test);
    let diverged: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Diverged { net, .. } => Some(net.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(diverged, vec!["plain"]);
    assert!(matches!(
        s.nets[1].diverged,
        Some(TrainError::Diverged { .. })
    ));
    assert_eq!(s.nets[0].trainer.step_count(), 50);
    assert!(s.nets[1].trainer.step_count() < 50);
    assert!(s.is_finished());
}

/// A change queued while a round runs applies at the next step boundary, to every net, and
/// says so; an out-of-range change is refused at once and nothing is queued.
#[test]
fn queued_hyper_parameters_apply_at_the_next_step() {
    let (train, test) = (shapes(1, 16), shapes(2, 8));
    let mut s = session(tiny(4), &["residual", "plain"], &train);
    let mut events = Vec::new();
    pollster::block_on(s.round(&train, &test, &mut |e| events.push(e))).unwrap();
    let bad = HyperparameterChange {
        momentum: Some(1.5),
        ..Default::default()
    };
    assert!(matches!(s.queue(bad), Err(TrainError::Invalid(_))));
    assert!(s.pending().borrow().is_none());
    // Written through the shared handle, as the page does while a step is in flight.
    *s.pending().borrow_mut() = Some(HyperparameterChange {
        lr: Some(0.02),
        momentum: Some(0.5),
        ..Default::default()
    });
    events.clear();
    pollster::block_on(s.round(&train, &test, &mut |e| events.push(e))).unwrap();
    assert!(
        matches!(&events[0], Event::Applied { step: 2, description } if description.contains("lr 0.02")),
        "{:?}",
        events[0]
    );
    for net in &s.nets {
        assert_eq!(net.trainer.config().sgd.momentum, 0.5);
        assert_eq!(net.trainer.config().lr.base_lr, 0.02);
    }
    let rates = step_rates(&events);
    assert_eq!(rates, vec![0.02, 0.02]);
}

/// A corrupted or crafted snapshot is refused with an error, never a panic.
#[test]
fn crafted_snapshots_are_refused() {
    let train = shapes(1, 16);
    let s = session(tiny(4), &["residual"], &train);
    let good = pollster::block_on(s.nets[0].trainer.snapshot()).unwrap();
    let device = Device::flex();
    assert!(Trainer::restore(good.clone(), &device).is_ok());
    // Truncated.
    let err = Trainer::restore(good[..good.len() / 2].to_vec(), &device)
        .err()
        .unwrap();
    assert!(matches!(err, TrainError::Snapshot(_)), "{err}");
    // The state's JSON edited: each edit must be refused by name.
    for (from, to, expect) in [
        ("\"batchSize\":8", "\"batchSize\":0", "batch size"),
        ("\"position\":0", "\"position\":9", "data order"),
        ("\"momentum\":0.9", "\"momentum\":7.0", "momentum"),
        ("\"num_classes\":10", "\"num_classes\":99", "class names"),
    ] {
        // The trainer state is the last metadata entry; same length keeps the offsets valid.
        assert_eq!(from.len(), to.len());
        let at = good
            .windows(from.len())
            .rposition(|w| w == from.as_bytes())
            .unwrap_or_else(|| panic!("the snapshot has {from}"));
        let mut bytes = good.clone();
        bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
        match Trainer::restore(bytes, &device) {
            Ok(_) => panic!("a snapshot with {to} was accepted"),
            Err(err) => assert!(err.to_string().contains(expect), "{to}: {err}"),
        }
    }
}

/// The rate of every step, in order.
fn step_rates(events: &[Event]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Step { metrics, .. } => Some(metrics.lr),
            _ => None,
        })
        .collect()
}
