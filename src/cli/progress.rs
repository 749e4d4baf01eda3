//! The training progress bar: steps with ETA, the latest loss, error, rate and speed, and a
//! line per evaluation. It only watches the session's events.

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::Event;

/// A progress bar (hidden when off or not wanted).
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar up to `iterations` steps, or a hidden one.
    pub fn new(visible: bool, iterations: usize) -> Self {
        if !visible {
            return Self(ProgressBar::hidden());
        }
        let bar = ProgressBar::new(iterations as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Self(bar)
    }

    /// Shows one event.
    pub fn show(&mut self, event: &Event) {
        match event {
            Event::Step {
                metrics,
                images_per_second,
                ..
            } => {
                self.0.set_position(metrics.step as u64);
                self.0.set_message(format!(
                    "epoch {} · loss {:.3} · err {:.1}% · lr {:.4} · {:.0} img/s",
                    metrics.epoch,
                    metrics.loss,
                    metrics.top1_error * 100.0,
                    metrics.lr,
                    images_per_second
                ));
            }
            Event::Eval { step, report, .. } => self.0.println(format!(
                "step {step}: test loss {:.3}, top-1 error {:.2}%, top-5 error {:.2}% ({} images)",
                report.loss,
                report.top1_error * 100.0,
                report.top5_error * 100.0,
                report.images
            )),
            _ => {}
        }
    }

    /// Clears the bar (or leaves it where training failed).
    pub fn finish(&self, ok: bool) {
        if ok {
            self.0.finish_and_clear();
        } else {
            self.0.abandon();
        }
    }
}
