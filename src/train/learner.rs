//! The native training run around the shared [Trainer]: a run directory with `config.json`,
//! `metrics.jsonl` and an atomically replaced `checkpoint.bpk`, progress with ETA, resume.
//!
//! Layout of a run directory:
//! - `config.json`: the [RunSpec] (`"spec"`, what `resnet train --spec` reads), the
//!   [TrainConfig] and the data it trains on;
//! - `metrics.jsonl`: one JSON object per step (`"kind":"step"`), per evaluation
//!   (`"kind":"eval"`) and per epoch (`"kind":"epoch"`: the means of its steps; the last,
//!   unfinished epoch of a run is marked `"complete":false`);
//! - `checkpoint.bpk`: model, optimizer, data order, RNG and step (what `--resume` reads);
//! - `model.bpk`: the final weights with their model card (what the page loads).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use burn::tensor::Device;
use serde_json::json;

use super::config::{EvalReport, StepMetrics, TrainConfig, TrainError};
use super::recipe::RunSpec;
use super::session::{Cadence, EpochMeans, Event, Net, Session};
use super::trainer::Trainer;
use crate::data::dataset::Dataset;
use crate::io::Precision;
use crate::io::atomic::write_atomic;

/// Where the run lives and what to say about its data.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Continue from `out/checkpoint.bpk`.
    pub resume: bool,
    /// A description of the data for `config.json` and the model card.
    pub data_description: String,
    /// Devices an update's batches run on side by side (data parallelism; empty: one device).
    pub devices: Vec<Device>,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training failed (diverged, bad data, device).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The run directory cannot be used.
    #[error("{path}: {reason}")]
    RunDir {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A file of the run could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Paths inside a run directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// The resumable checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint.bpk")
    }
    /// The final model.
    pub fn model(&self) -> PathBuf {
        self.0.join("model.bpk")
    }
    /// The metrics log.
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.jsonl")
    }
    /// The configuration.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
}

/// Milliseconds since the first call: the session's clock.
fn clock() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// Starts (or resumes) a run and trains it as `spec`'s cadence says (iterations, evaluations,
/// checkpoints), logging every event of the [Session] to the run directory and passing it to
/// `observe` (the CLI's progress bar).
///
/// `config` is ignored when resuming, except that its architecture must match the
/// checkpoint's (a resume directory from another architecture is refused).
pub fn run(
    spec: &RunSpec,
    config: TrainConfig,
    train: &Dataset,
    test: &Dataset,
    device: &Device,
    options: &RunOptions,
    observe: &mut dyn FnMut(&Event),
) -> Result<(Trainer, Option<EvalReport>), RunError> {
    let dir = RunDir(options.out.clone());
    fs::create_dir_all(&dir.0).map_err(io_error(&dir.0))?;
    // A run killed mid-checkpoint leaves its temporary file: this process owns the directory now.
    crate::io::atomic::remove_leftovers(&dir.0).map_err(io_error(&dir.0))?;
    let mut trainer = if options.resume {
        resume(&dir, &config, device)?
    } else {
        if dir.checkpoint().exists() {
            return Err(RunError::RunDir {
                path: dir.0.display().to_string(),
                reason:
                    "already holds a run: pass --resume to continue it, or choose another --out"
                        .into(),
            });
        }
        let config_json =
            json!({ "spec": spec, "train": &config, "data": &options.data_description });
        write_atomic(
            &dir.config(),
            serde_json::to_string_pretty(&config_json)
                .expect("config serialises")
                .as_bytes(),
        )
        .map_err(io_error(&dir.config()))?;
        let _ = fs::remove_file(dir.metrics());
        let mut trainer = Trainer::new(config, train, device)?;
        trainer.set_spec(spec.clone());
        trainer
    };

    if options.devices.len() > 1 {
        trainer.set_devices(options.devices.clone())?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.metrics())
        .map_err(io_error(&dir.metrics()))?;
    // A resumed run picks up the steps its current epoch already logged.
    let epoch = if trainer.at_epoch_end() || !options.resume {
        EpochMeans::default()
    } else {
        epoch_from_log(&dir.metrics(), trainer.epoch())
    };
    let mut cadence = Cadence::from_spec(spec, train.len());
    cadence.eval_batch = 256;
    let mut session = Session::new(
        spec.clone(),
        vec![Net::new("single", trainer, epoch)],
        cadence,
        clock,
    );
    loop {
        let mut events = Vec::new();
        let finished = pollster::block_on(session.round(train, test, &mut |e| events.push(e)))?;
        let log_path = dir.metrics();
        for event in &events {
            let metrics = io_error(&log_path);
            match event {
                Event::Step {
                    metrics: m,
                    images_per_second,
                    ..
                } => write_step(&mut log, m, *images_per_second).map_err(metrics),
                Event::Epoch { summary, .. } => {
                    write_line(&mut log, "epoch", summary).map_err(metrics)
                }
                Event::Eval { step, report, .. } => {
                    write_eval(&mut log, *step, report).map_err(metrics)
                }
                // Its error names the checkpoint file (a full disk, say).
                Event::Snapshot { .. } => checkpoint(&session.nets[0].trainer, &dir),
                _ => Ok(()),
            }?;
            observe(event);
        }
        if let Some(err) = session.nets[0].diverged.clone() {
            return Err(RunError::Train(err));
        }
        if finished {
            break;
        }
    }
    let net = session.nets.remove(0);
    let (trainer, last_eval) = (net.trainer, net.last_eval);
    let description = format!(
        "{} trained {} steps on {}{}",
        trainer.config().model.name(),
        trainer.step_count(),
        options.data_description,
        match &last_eval {
            Some(r) => format!("; test top-1 error {:.2}%", r.top1_error * 100.0),
            None => String::new(),
        }
    );
    crate::io::save(
        &trainer.model(),
        &trainer.card(Some(description)),
        &dir.model(),
        Precision::F32,
    )
    .map_err(|e| RunError::Io {
        path: dir.model().display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok((trainer, last_eval))
}

/// The trainer of `dir`'s checkpoint, refused if it is another architecture than `config`'s.
fn resume(dir: &RunDir, config: &TrainConfig, device: &Device) -> Result<Trainer, RunError> {
    let bytes = fs::read(dir.checkpoint()).map_err(|e| RunError::RunDir {
        path: dir.checkpoint().display().to_string(),
        reason: format!("cannot resume: {e}"),
    })?;
    let trainer = Trainer::restore(bytes, device)?;
    let had = &trainer.config().model;
    if had != &config.model {
        return Err(RunError::RunDir {
            path: dir.0.display().to_string(),
            reason: format!(
                "holds a {} run ({} classes); refusing to resume it as {} ({} classes)",
                had.name(),
                had.num_classes(),
                config.model.name(),
                config.model.num_classes()
            ),
        });
    }
    truncate_metrics(&dir.metrics(), trainer.step_count()).map_err(io_error(&dir.metrics()))?;
    Ok(trainer)
}

/// Replaces the checkpoint atomically.
pub fn checkpoint(trainer: &Trainer, dir: &RunDir) -> Result<(), RunError> {
    let bytes = pollster::block_on(trainer.snapshot())?;
    write_atomic(&dir.checkpoint(), &bytes).map_err(io_error(&dir.checkpoint()))
}

fn write_line(log: &mut File, kind: &str, value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut line = serde_json::to_value(value).expect("metrics serialise");
    line["kind"] = kind.into();
    writeln!(log, "{line}")
}

fn write_step(log: &mut File, m: &StepMetrics, images_per_second: f64) -> std::io::Result<()> {
    let mut line = serde_json::to_value(m).expect("metrics serialise");
    line["kind"] = "step".into();
    line["imagesPerSecond"] = images_per_second.into();
    writeln!(log, "{line}")
}

fn write_eval(log: &mut File, step: usize, r: &EvalReport) -> std::io::Result<()> {
    let mut line = serde_json::to_value(r).expect("report serialises");
    line["kind"] = "eval".into();
    line["step"] = step.into();
    writeln!(log, "{line}")
}

/// The step lines of `epoch` already in the log (a resumed run's unfinished epoch).
fn epoch_from_log(path: &Path, epoch: usize) -> EpochMeans {
    let mut sums = EpochMeans::default();
    for line in read_metrics(path).unwrap_or_default() {
        if line["kind"] != "step" {
            continue;
        }
        let images_per_second = line["imagesPerSecond"].as_f64().unwrap_or(f64::NAN);
        match serde_json::from_value::<StepMetrics>(line) {
            Ok(m) if m.epoch == epoch => sums.add(&m, images_per_second),
            _ => {}
        }
    }
    sums
}

/// Drops the log lines of steps after `step`: a crash can leave lines the checkpoint never
/// saw, and the resumed run writes them again.
fn truncate_metrics(path: &Path, step: usize) -> std::io::Result<()> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        let at = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["step"].as_u64());
        if at.is_some_and(|s| s as usize <= step) {
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    write_atomic(path, kept.as_bytes())
}

/// The metrics log of a run, parsed (for tests and `resnet eval`).
pub fn read_metrics(path: &Path) -> std::io::Result<Vec<serde_json::Value>> {
    let file = File::open(path)?;
    Ok(BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}
