//! Data parallelism over several devices (natively), the way burn-train's `MultiDevice`
//! strategy with the optimizer on the main device does it: the model is forked to every
//! device, each replica runs its batch on its own thread, and the gradients are moved to the
//! main device and summed there by burn's `GradientsAccumulator`; one SGD update follows.
//! (burn 0.22's all-reduce runs on CUDA only, through NCCL: this is the portable path, for
//! wgpu / Vulkan devices and CUDA alike.)
//!
//! The replicas are the batches of a gradient-accumulation update run side by side, so `N`
//! devices with `accumulate = N` give exactly the update one device gives with the same
//! accumulation: each batch is normalised by its own BatchNorm statistics either way.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use super::gradients::{Sums, batch_gradients};
use crate::model::Network;
use crate::model::amp::Amp;

/// One batch of an update: its inputs and one-hot targets (on the main device).
pub(super) struct Shard {
    pub x: Tensor<4>,
    pub one_hot: Tensor<2>,
}

/// The gradients of `shards[k]` on replica `k` of `model` on `devices[k]` (autodiff devices),
/// as [batch_gradients] with `(divide, amp, loss_scale)`, moved to `main`; with the batches'
/// loss and hit sums.
pub(super) fn parallel_gradients(
    model: &Network,
    devices: &[Device],
    shards: Vec<Shard>,
    smoothing: f64,
    (divide, amp, loss_scale): (f32, Amp, f32),
    main: &Device,
) -> Vec<(GradientsParams, Sums)> {
    let results: Vec<(GradientsParams, Sums)> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .cloned()
            .zip(shards)
            .map(|(device, shard)| {
                let replica = model.clone();
                scope.spawn(move || {
                    let replica = replica.fork(&device);
                    let x = shard.x.to_device(&device);
                    let one_hot = shard.one_hot.to_device(&device);
                    batch_gradients(&replica, x, one_hot, smoothing, divide, amp, loss_scale)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a replica's thread"))
            .collect()
    });
    let inner = main.clone().inner();
    results
        .into_iter()
        .map(|(grads, (loss, top1, top5))| {
            (
                grads.to_device(main, model),
                (
                    loss.to_device(&inner),
                    top1.to_device(&inner),
                    top5.to_device(&inner),
                ),
            )
        })
        .collect()
}
