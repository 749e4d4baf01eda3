//! The native training run around the shared [Trainer]: a run directory with `config.json`,
//! `metrics.jsonl` and an atomically replaced `checkpoint.bpk`, progress with ETA, resume.
//!
//! Layout of a run directory:
//! - `config.json`: the [TrainConfig] and the data it trains on;
//! - `metrics.jsonl`: one JSON object per step (`"kind":"step"`), per evaluation
//!   (`"kind":"eval"`) and per epoch (`"kind":"epoch"`: the means of its steps; the last,
//!   unfinished epoch of a run is marked `"complete":false`);
//! - `checkpoint.bpk`: model, optimizer, data order, RNG and step (what `--resume` reads);
//! - `model.bpk`: the final weights with their model card (what the page loads).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::trainer::{EvalReport, StepMetrics, TrainConfig, TrainError, Trainer};
use crate::data::dataset::Dataset;
use crate::io::Precision;

/// How long and how often.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Stop after this many iterations in total.
    pub iterations: usize,
    /// Write a checkpoint every this many steps (and at every epoch end).
    pub checkpoint_every: usize,
    /// Evaluate on the test set every this many steps (and at the end).
    pub eval_every: usize,
    /// Evaluate on at most this many test images (all if `None`).
    pub eval_limit: Option<usize>,
    /// Continue from `out/checkpoint.bpk`.
    pub resume: bool,
    /// Draw a progress bar (off for tests and non-terminals).
    pub progress: bool,
    /// A description of the data for `config.json` and the model card.
    pub data_description: String,
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

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the
/// new one, never a mix: write a temporary sibling, flush it to disk, rename it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// [write_atomic] with the writing done by `write` (which may fail: the old file stays).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // Make the rename itself durable.
            File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?
            .sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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

/// Starts (or resumes) a run and trains until `options.iterations`.
///
/// `config` is ignored when resuming, except that its architecture must match the
/// checkpoint's (a resume directory from another architecture is refused).
pub fn run(
    config: TrainConfig,
    train: &Dataset,
    test: &Dataset,
    device: &Device,
    options: &RunOptions,
) -> Result<(Trainer, Option<EvalReport>), RunError> {
    let dir = RunDir(options.out.clone());
    fs::create_dir_all(&dir.0).map_err(io_error(&dir.0))?;
    let mut trainer = if options.resume {
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
                    had.num_classes,
                    config.model.name(),
                    config.model.num_classes
                ),
            });
        }
        truncate_metrics(&dir.metrics(), trainer.step_count()).map_err(io_error(&dir.metrics()))?;
        trainer
    } else {
        if dir.checkpoint().exists() {
            return Err(RunError::RunDir {
                path: dir.0.display().to_string(),
                reason:
                    "already holds a run: pass --resume to continue it, or choose another --out"
                        .into(),
            });
        }
        let config_json = json!({ "train": &config, "data": &options.data_description });
        write_atomic(
            &dir.config(),
            serde_json::to_string_pretty(&config_json)
                .unwrap()
                .as_bytes(),
        )
        .map_err(io_error(&dir.config()))?;
        let _ = fs::remove_file(dir.metrics());
        Trainer::new(config, train, device)?
    };

    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.metrics())
        .map_err(io_error(&dir.metrics()))?;
    let start = trainer.step_count();
    let bar = progress(options, start);
    let started = Instant::now();
    let batch = trainer.config().batch_size;
    let mut last_eval = None;
    // A resumed run picks up the steps its current epoch already logged.
    let mut epoch = if trainer.at_epoch_end() {
        EpochMeans::default()
    } else {
        EpochMeans::from_log(&dir.metrics(), trainer.epoch())
    };

    while trainer.step_count() < options.iterations {
        let metrics = match pollster::block_on(trainer.step(train)) {
            Ok(m) => m,
            Err(err) => {
                bar.abandon();
                return Err(err.into());
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let images_per_second = (metrics.step - start) as f64 * batch as f64 / seconds.max(1e-9);
        write_step(&mut log, &metrics, images_per_second).map_err(io_error(&dir.metrics()))?;
        epoch.add(&metrics, images_per_second);
        let epoch_ended = trainer.at_epoch_end();
        if epoch_ended || metrics.step >= options.iterations {
            epoch
                .write(&mut log, &metrics, epoch_ended)
                .map_err(io_error(&dir.metrics()))?;
            epoch = EpochMeans::default();
        }
        bar.set_position(metrics.step as u64);
        bar.set_message(format!(
            "epoch {} · loss {:.3} · err {:.1}% · lr {:.4} · {:.0} img/s",
            metrics.epoch,
            metrics.loss,
            metrics.top1_error * 100.0,
            metrics.lr,
            images_per_second
        ));

        let step = metrics.step;
        let done = step >= options.iterations;
        if step % options.eval_every.max(1) == 0 || done {
            let report = pollster::block_on(trainer.evaluate(test, options.eval_limit, 256))?;
            trainer.observe_eval_error(report.top1_error as f64);
            write_eval(&mut log, step, &report).map_err(io_error(&dir.metrics()))?;
            bar.println(format!(
                "step {step}: test loss {:.3}, top-1 error {:.2}%, top-5 error {:.2}% ({} images)",
                report.loss,
                report.top1_error * 100.0,
                report.top5_error * 100.0,
                report.images
            ));
            last_eval = Some(report);
        }
        if step % options.checkpoint_every.max(1) == 0 || epoch_ended || done {
            checkpoint(&trainer, &dir)?;
        }
    }
    bar.finish_and_clear();
    let description = match &last_eval {
        Some(r) => format!(
            "{} trained {} steps on {}; test top-1 error {:.2}%",
            trainer.config().model.name(),
            trainer.step_count(),
            options.data_description,
            r.top1_error * 100.0
        ),
        None => format!(
            "{} trained {} steps on {}",
            trainer.config().model.name(),
            trainer.step_count(),
            options.data_description
        ),
    };
    let model = trainer.model();
    crate::io::save(
        &model,
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

/// Replaces the checkpoint atomically.
pub fn checkpoint(trainer: &Trainer, dir: &RunDir) -> Result<(), RunError> {
    let bytes = pollster::block_on(trainer.snapshot())?;
    write_atomic(&dir.checkpoint(), &bytes).map_err(io_error(&dir.checkpoint()))
}

fn progress(options: &RunOptions, start: usize) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(options.iterations as u64).with_position(start as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
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

/// Sums of one epoch's step metrics, logged as their means when the epoch ends.
#[derive(Debug, Default)]
struct EpochMeans {
    steps: usize,
    loss: f64,
    top1_error: f64,
    top5_error: f64,
    images_per_second: f64,
}

impl EpochMeans {
    fn add(&mut self, m: &StepMetrics, images_per_second: f64) {
        self.steps += 1;
        self.loss += m.loss as f64;
        self.top1_error += m.top1_error as f64;
        self.top5_error += m.top5_error as f64;
        self.images_per_second += images_per_second;
    }

    /// The step lines of `epoch` already in the log (a resumed run's unfinished epoch).
    fn from_log(path: &Path, epoch: usize) -> Self {
        let mut sums = Self::default();
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

    fn write(&self, log: &mut File, last: &StepMetrics, complete: bool) -> std::io::Result<()> {
        let n = self.steps.max(1) as f64;
        let line = json!({
            "kind": "epoch",
            "epoch": last.epoch,
            "step": last.step,
            "steps": self.steps,
            "complete": complete,
            "loss": self.loss / n,
            "top1Error": self.top1_error / n,
            "top5Error": self.top5_error / n,
            "imagesPerSecond": self.images_per_second / n,
            "lr": last.lr,
        });
        writeln!(log, "{line}")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_atomic_write_leaves_the_previous_file_intact() {
        let dir = std::env::temp_dir().join(format!("resnet-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.bpk");
        write_atomic(&path, b"the good checkpoint").unwrap();
        let failed = write_atomic_with(&path, |file| {
            file.write_all(b"half of the new")?;
            Err(std::io::Error::other("killed mid-write"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"the good checkpoint");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
        write_atomic(&path, b"the next one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"the next one");
    }
}
