// The Train view's shared state (what the worker reported, per net), and what the modules
// derive from it: the nets' labels and colours, the latest step.

export const view = document.getElementById("view-train");
const COLORS = { residual: "#3b5bdb", plain: "#e8590c", single: "#2b8a3e" };
// A family run's nets are named by their architecture: coloured by their place in the run.
const PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e"];

/** The colour of net `name` on every chart, heatmap caption and plot. */
export function colorOf(name) {
  return COLORS[name] ?? PALETTE[Math.max(0, [...state.nets.keys()].indexOf(name)) % PALETTE.length];
}

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

/** An architecture as people write it: "ResNet-20", "plain-20", "pre-act ResNet-20", "WRN-16-2", "ResNeXt-29 (8x4d)". */
function pretty(arch) {
  const plain = arch.startsWith("plain-");
  const a = plain ? arch.slice(6) : arch;
  const m = /^(resnet|plain|preact_resnet)(\d+)$/.exec(a);
  const wrn = /^wrn(\d+)_(\d+)$/.exec(a);
  const resnext = /^resnext(\d+)_(\d+x\d+d)$/.exec(a);
  const dense = /^densenet_bc(\d+)_(\d+)$/.exec(a);
  const name = m
    ? `${{ resnet: "ResNet", plain: "plain", preact_resnet: "pre-act ResNet" }[m[1]]}-${m[2]}`
    : wrn
      ? `WRN-${wrn[1]}-${wrn[2]}`
      : resnext
        ? `ResNeXt-${resnext[1]} (${resnext[2]})`
        : dense
          ? `DenseNet-BC-${dense[1]} (k=${dense[2]})`
          : a;
  return plain ? `plain ${name}` : name;
}

/** "ResNet-20", "plain-20", "resnet20 (fine-tuned)", or a family run's architecture. */
export function label(net) {
  const depth = net.info.arch.replace(/\D/g, "");
  const { name, arch } = net.info;
  if (name === "plain") return `plain-${depth}`;
  if (name === "single") return `${arch} (fine-tuned)`;
  return name === "residual" ? `ResNet-${depth}` : pretty(arch);
}
