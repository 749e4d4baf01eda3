// The Train view's shared state (what the worker reported, per net), and what the modules
// derive from it: the nets' labels and colours, the latest step.

export const view = document.getElementById("view-train");
export const COLORS = { residual: "#3b5bdb", plain: "#e8590c", single: "#2b8a3e" };

export const state = {
  running: false,
  nets: new Map(), // name -> { info, loss[], error[], lr[], speed[], testError[], grads[][], lastEval?, canvas? }
  total: 0, // iterations of the run
  classes: null, // the dataset's class names
  lastSpeed: 0, // images/s of the latest progress message
  gradients: null, // the latest gradient correlation: { step, reports: { [name]: GradientCorrelation } }
  lesion: null, // the latest lesion study: { step, reports: { [name]: LesionReport } }
  analysing: false, // Why residuals work is measuring (its button and the run's are off)
};

export function addNet(info) {
  state.nets.set(info.name, { info, loss: [], error: [], lr: [], speed: [], testError: [], grads: [] });
}

export function maxStep() {
  return Math.max(0, ...[...state.nets.values()].map((n) => n.info.stepCount ?? 0));
}

/** "ResNet-20", "plain-20" or "resnet20 (fine-tuned)". */
export function label(net) {
  const depth = net.info.arch.replace(/\D/g, "");
  return net.info.name === "plain" ? `plain-${depth}` : net.info.name === "single" ? `${net.info.arch} (fine-tuned)` : `ResNet-${depth}`;
}
