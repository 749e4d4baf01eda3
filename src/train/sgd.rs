//! SGD with momentum, as in PyTorch (and the paper's Torch code): with weight decay `wd`,
//! momentum `m` and rate `lr`, for each parameter `p` with gradient `g`:
//!
//! ```text
//! g = g + wd * p            (unless p is a BN or bias parameter and those are exempt)
//! v = m * v + g             (v = g at the first step)
//! p = p - lr * (g + m * v)  (Nesterov)   or   p = p - lr * v
//! ```
//!
//! The momentum buffers are keyed by parameter path, so a snapshot can be written with async
//! reads (the browser) and restored into a freshly built model.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [Sgd].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SgdConfig {
    /// Momentum (0.9 in the paper).
    pub momentum: f64,
    /// Nesterov momentum instead of heavy ball.
    pub nesterov: bool,
    /// L2 weight decay (1e-4 in the paper; 5e-4 is common for CIFAR nowadays).
    pub weight_decay: f64,
    /// Also decay BN γ/β and biases (the paper did; many modern recipes don't).
    pub decay_bn_and_bias: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            decay_bn_and_bias: true,
        }
    }
}

/// The optimizer and its momentum buffers.
#[derive(Debug, Clone, Default)]
pub struct Sgd {
    /// Hyper-parameters; may be changed between steps.
    pub config: SgdConfig,
    /// Momentum buffer of each parameter, flattened, by module path.
    pub velocity: BTreeMap<String, Tensor<1>>,
}

impl Sgd {
    /// An optimizer with empty momentum buffers.
    pub fn new(config: SgdConfig) -> Self {
        Self {
            config,
            velocity: BTreeMap::new(),
        }
    }

    /// Applies one update with rate `lr` to every parameter that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        self.step_scaled(lr, module, grads, 1.0)
    }

    /// [Sgd::step] with gradients that are `scale` times the loss's (loss scaling): they are
    /// divided by it first.
    pub fn step_scaled<M: Module>(
        &mut self,
        lr: f64,
        module: M,
        mut grads: GradientsParams,
        scale: f32,
    ) -> M {
        let mut mapper = SgdMapper {
            sgd: self,
            grads: &mut grads,
            lr,
            unscale: 1.0 / scale,
            path: Default::default(),
        };
        module.map(&mut mapper)
    }
}

struct SgdMapper<'a> {
    sgd: &'a mut Sgd,
    grads: &'a mut GradientsParams,
    lr: f64,
    /// What each gradient is multiplied by first (1 / the loss scale).
    unscale: f32,
    path: crate::model::network::ModulePath,
}

impl ModuleMapper for SgdMapper<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let config = &self.sgd.config;
        let require_grad = tensor.is_require_grad();
        let value = tensor.inner();
        let dims = value.dims();
        let count = dims.iter().product::<usize>();
        let grad = if self.unscale != 1.0 {
            grad * self.unscale
        } else {
            grad
        };

        // BN γ/β and biases are the rank-1 parameters.
        let decays = D > 1 || config.decay_bn_and_bias;
        let grad = if decays && config.weight_decay != 0.0 {
            grad + value.clone() * config.weight_decay
        } else {
            grad
        };
        let path = self.path.joined();
        let update = if config.momentum != 0.0 {
            let velocity = match self.sgd.velocity.remove(&path) {
                Some(v) => v.reshape(dims) * config.momentum + grad.clone(),
                None => grad.clone(),
            };
            let update = if config.nesterov {
                grad + velocity.clone() * config.momentum
            } else {
                velocity.clone()
            };
            self.sgd.velocity.insert(path, velocity.reshape([count]));
            update
        } else {
            grad
        };
        let mut updated = Tensor::from_inner(value - update * self.lr);
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    fn values<const D: usize>(param: &Param<Tensor<D>>) -> Vec<f32> {
        param.val().into_data().try_into_vec::<f32>().unwrap()
    }

    /// Two steps by hand on f(w, b) = sum(x·w + b) for one input x = [1, 2]: the gradients
    /// are constant, dL/dw = [1, 2] and dL/db = 1.
    #[test]
    fn matches_pytorch_sgd_by_hand() {
        let device = Device::flex().autodiff();
        let mut layer: Linear = LinearConfig::new(2, 1).init(&device);
        layer.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.5f32, -1.0], [2, 1]),
            &device,
        ));
        layer.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.25f32], [1]),
            &device,
        )));
        let config = SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.1,
            decay_bn_and_bias: false,
        };
        let mut sgd = Sgd::new(config);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &device);
        for _ in 0..2 {
            let loss = layer.forward(x.clone()).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = sgd.step(0.5, layer, grads);
        }
        // w: g1 = [1, 2] + 0.1·[0.5, -1] = [1.05, 1.9]; v1 = g1; w1 = w0 - 0.5·v1 = [-0.025, -1.95]
        //    g2 = [1, 2] + 0.1·w1 = [0.9975, 1.805]; v2 = 0.9·v1 + g2 = [1.9425, 3.515]
        //    w2 = w1 - 0.5·v2 = [-0.99625, -3.7075]
        let w = values(&layer.weight);
        assert!(
            (w[0] + 0.99625).abs() < 1e-6 && (w[1] + 3.7075).abs() < 1e-6,
            "{w:?}"
        );
        // b (no decay): v1 = 1, b1 = -0.25; v2 = 1.9, b2 = -1.2.
        let b = values(layer.bias.as_ref().unwrap());
        assert!((b[0] + 1.2).abs() < 1e-6, "{b:?}");
        assert_eq!(sgd.velocity.len(), 2);
        assert!(layer.weight.val().is_require_grad());
    }

    #[test]
    fn nesterov_adds_the_look_ahead() {
        let device = Device::flex().autodiff();
        let mut layer: Linear = LinearConfig::new(1, 1).with_bias(false).init(&device);
        layer.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.0f32], [1, 1]),
            &device,
        ));
        let config = SgdConfig {
            momentum: 0.5,
            nesterov: true,
            weight_decay: 0.0,
            decay_bn_and_bias: true,
        };
        let mut sgd = Sgd::new(config);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32], [1, 1]), &device);
        for _ in 0..2 {
            let loss = layer.forward(x.clone()).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = sgd.step(1.0, layer, grads);
        }
        // g = 1 each step. v1 = 1, u1 = 1 + 0.5 = 1.5; v2 = 1.5, u2 = 1 + 0.75 = 1.75. w = -3.25.
        let w = values(&layer.weight);
        assert!((w[0] + 3.25).abs() < 1e-6, "{w:?}");
    }
}
