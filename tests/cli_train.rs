//! `resnet train / eval / export / data` as a user runs them: crash-safe checkpoints,
//! resume after `kill -9`, CIFAR directories, downloads from a local server.
#![cfg(not(target_family = "wasm"))]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use resnet::data::cifar::{self, Variant};
use resnet::data::dataset::Dataset;
use resnet::data::image_set::ImageSet;
use resnet::data::synthetic::Shapes;
use resnet::train::learner::read_metrics;

fn resnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnet"))
        .args(args)
        .output()
        .expect("the resnet binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = resnet(args);
    assert!(
        out.status.success(),
        "resnet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(args: &[&str]) -> String {
    let out = resnet(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "resnet {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("resnet-cli-train-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `resnet train` of ResNet-8 on `data` into `out`, with `flags` (sizes, batch, budget …).
fn resnet8_args(data: &str, out: &Path, flags: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--arch", "resnet8", "--data", data]
        .iter()
        .chain(flags)
        .map(|s| s.to_string())
        .collect();
    args.extend([
        "--no-progress".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    args
}

/// Runs `args`, which must succeed; what it printed.
fn ok_args(args: &[String]) -> String {
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A small, quick run: ResNet-8 on 256 Shapes images, batch 16 (16 steps per epoch).
fn tiny_run(out: &Path, extra: &[&str]) -> Vec<String> {
    #[rustfmt::skip]
    let base = [
        "--train-size", "256", "--test-size", "64", "--batch-size", "16", "--iterations", "40",
        "--checkpoint-every", "5", "--eval-every", "20", "--seed", "3",
    ];
    resnet8_args("synthetic", out, &[&base[..], extra].concat())
}

fn step_losses(run: &Path) -> Vec<(u64, f64)> {
    read_metrics(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|m| m["kind"] == "step")
        .map(|m| (m["step"].as_u64().unwrap(), m["loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn train_resumes_after_kill_9_with_the_same_losses_then_eval_and_export() {
    // The uninterrupted reference.
    let reference = scratch("reference");
    let args = tiny_run(&reference, &[]);
    ok_args(&args);
    let expected = step_losses(&reference);
    assert_eq!(expected.len(), 40);
    assert!(reference.join("model.bpk").exists() && reference.join("config.json").exists());

    // The same run, killed with SIGKILL once it has written a checkpoint and gone further.
    let crashed = scratch("crashed");
    let args = tiny_run(&crashed, &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_resnet"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let steps = read_metrics(&crashed.join("metrics.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0);
        if crashed.join("checkpoint.bpk").exists() && steps >= 12 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = step_losses(&crashed).len();
    assert!(before < 40, "the run finished before it was killed");
    // Only complete checkpoints exist (no half-written one, no temporary file left behind
    // that could be mistaken for one).
    let checkpoint_ok = resnet::train::Trainer::restore(
        std::fs::read(crashed.join("checkpoint.bpk")).unwrap(),
        &burn::tensor::Device::flex(),
    );
    assert!(checkpoint_ok.is_ok());

    // Without --resume the run directory is protected.
    let err = refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("already holds a run: pass --resume"), "{err}");

    let mut resume = args.clone();
    resume.push("--resume".into());
    ok(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    let resumed = step_losses(&crashed);
    assert_eq!(
        resumed, expected,
        "the resumed run's losses differ from the uninterrupted run's"
    );

    // Per-epoch lines (256 images / batch 16 = 16 steps an epoch): the means of their steps,
    // the same after kill -9 and --resume as in the uninterrupted run.
    let epochs = |run: &Path| -> Vec<serde_json::Value> {
        read_metrics(&run.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .filter(|m| m["kind"] == "epoch")
            .collect()
    };
    let reference_epochs = epochs(&reference);
    let shape: Vec<(u64, u64, bool)> = reference_epochs
        .iter()
        .map(|e| {
            let n = |k: &str| e[k].as_u64().unwrap();
            (n("epoch"), n("step"), e["complete"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(shape, [(0, 16, true), (1, 32, true), (2, 40, false)]);
    let mean =
        |steps: &[(u64, f64)]| steps.iter().map(|(_, l)| l).sum::<f64>() / steps.len() as f64;
    for (e, steps) in
        reference_epochs
            .iter()
            .zip([&expected[..16], &expected[16..32], &expected[32..]])
    {
        let logged = e["loss"].as_f64().unwrap();
        assert!(
            (logged - mean(steps)).abs() < 1e-6,
            "epoch {e}: mean of its steps {}",
            mean(steps)
        );
    }
    let resumed_epochs = epochs(&crashed);
    assert_eq!(resumed_epochs.len(), 3, "{resumed_epochs:?}");
    for (a, b) in resumed_epochs.iter().zip(&reference_epochs) {
        assert_eq!(a["steps"], b["steps"]);
        assert!(
            (a["loss"].as_f64().unwrap() - b["loss"].as_f64().unwrap()).abs() < 1e-9,
            "{a} vs {b}"
        );
    }

    // Resuming as another architecture is refused.
    let mut wrong = tiny_run(&crashed, &["--resume"]);
    wrong[2] = "resnet14".into();
    let err = refused(&wrong.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("holds a resnet8 run") && err.contains("resnet14"),
        "{err}"
    );

    // eval on the final weights, export from the run directory, classify with the export.
    let model = reference.join("model.bpk");
    // `command` (eval, analyse) on the saved model and 64 Shapes test images.
    let on_model = |command: &str, extra: &[&str]| {
        let base = [
            command,
            "--weights",
            model.to_str().unwrap(),
            "--data",
            "synthetic",
            "--test-size",
            "64",
        ];
        ok(&[&base[..], extra].concat())
    };
    let eval = |extra: &[&str]| on_model("eval", extra);
    let report = eval(&["--json"]);
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["images"], 64);
    // The saved model scores exactly what the run's own last evaluation reported.
    let last_eval = read_metrics(&reference.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .rfind(|m| m["kind"] == "eval")
        .unwrap();
    assert_eq!(last_eval["step"], 40);
    assert_eq!(
        report["top1Error"], last_eval["top1Error"],
        "{report} vs {last_eval}"
    );
    assert_eq!(report["confusion"], last_eval["confusion"]);
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4
    };
    assert!(
        close(&report["loss"], &last_eval["loss"]),
        "{report} vs {last_eval}"
    );
    // The 10-crop averages other views: its loss differs from the center crop's.
    let ten: serde_json::Value =
        serde_json::from_str(eval(&["--crop", "ten-crop", "--json"]).trim()).unwrap();
    assert_eq!(ten["images"], 64);
    assert!(!close(&ten["loss"], &report["loss"]), "{ten} vs {report}");

    // The lesion study: the intact error is eval's, one entry per block of ResNet-8; the
    // gradient correlation of the same blocks.
    let analysis: serde_json::Value =
        serde_json::from_str(on_model("analyse", &["--images", "4", "--json"]).trim()).unwrap();
    let lesion = &analysis["lesion"];
    assert_eq!(lesion["intactError"], report["top1Error"], "{lesion}");
    let blocks = lesion["blocks"].as_array().unwrap();
    let names: Vec<&str> = blocks
        .iter()
        .map(|b| b["block"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["layer1.0", "layer2.0", "layer3.0"], "{lesion}");
    assert!(
        blocks
            .iter()
            .all(|b| (0.0..=1.0).contains(&b["top1Error"].as_f64().unwrap()))
    );
    let gradients = &analysis["gradients"];
    assert_eq!(gradients["images"], 4, "{gradients}");
    let depths: Vec<u64> = gradients["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["depth"].as_u64().unwrap())
        .collect();
    assert_eq!(depths, [3, 5, 7], "{gradients}");

    // The run's spec reproduces the run: the same losses from `--spec config.json`, and
    // the spec travels inside the exported weights.
    let again = scratch("from-spec");
    ok(&[
        "train",
        "--spec",
        reference.join("config.json").to_str().unwrap(),
        "--no-progress",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(step_losses(&again), expected, "--spec reproduces the run");
    let exported = reference.join("exported.bpk");
    ok(&[
        "export",
        reference.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
        "--f16",
    ]);
    let image = reference.join("sample.png");
    image::RgbImage::from_pixel(32, 32, image::Rgb([10, 200, 30]))
        .save(&image)
        .unwrap();
    let from_config = ok(&[
        "train",
        "--spec",
        reference.join("config.json").to_str().unwrap(),
        "--print-spec",
    ]);
    let from_weights = ok(&[
        "train",
        "--spec",
        exported.to_str().unwrap(),
        "--print-spec",
    ]);
    assert_eq!(from_config, from_weights);
    assert!(
        from_config.contains("\"arch\": \"resnet8\""),
        "{from_config}"
    );
}

/// The bundled model (0.77% test error) names every sample image's class, with one view and
/// with the fully-convolutional multi-scale test (3 scales, each flipped: 6 views).
#[test]
fn classify_names_the_sample_images_with_every_test_view() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let samples: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(root.join("www/samples/index.json")).unwrap(),
    )
    .unwrap();
    let files: Vec<String> = samples
        .iter()
        .take(10)
        .map(|s| {
            root.join("www/samples")
                .join(s["file"].as_str().unwrap())
                .display()
                .to_string()
        })
        .collect();
    let bundled = root
        .join("www/models/resnet20-shapes.bpk")
        .display()
        .to_string();
    for (views, count) in [("center", 1), ("multi-scale", 6)] {
        let mut args = vec![
            "classify",
            "--weights",
            &bundled,
            "--views",
            views,
            "--json",
        ];
        args.extend(files.iter().map(String::as_str));
        let out = ok(&args);
        let results: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(results.len(), 10);
        for (result, sample) in results.iter().zip(&samples) {
            assert_eq!(result["views"], count, "{views}");
            assert_eq!(
                result["predictions"][0]["label"], sample["label"],
                "{views}: {}",
                result["image"]
            );
        }
    }
}

fn shapes_as_cifar(dir: &Path, count: usize) -> ImageSet {
    let set = Dataset::Shapes(Shapes {
        seed: 5,
        len: count,
    })
    .to_image_set();
    std::fs::create_dir_all(dir).unwrap();
    let half = ImageSet {
        labels: set.labels[..count / 2].to_vec(),
        pixels: set.pixels[..count / 2 * cifar::PIXELS].to_vec(),
        classes: vec![],
    };
    for i in 1..=5 {
        std::fs::write(
            dir.join(format!("data_batch_{i}.bin")),
            cifar::encode(&half, Variant::Cifar10),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("test_batch.bin"),
        cifar::encode(&half, Variant::Cifar10),
    )
    .unwrap();
    set
}

#[test]
fn trains_on_a_cifar10_directory_and_refuses_broken_ones() {
    let dir = scratch("cifar").join("cifar-10-batches-bin");
    shapes_as_cifar(&dir, 64);
    let out = scratch("cifar-run");
    let data = format!("cifar10:{}", dir.parent().unwrap().display());
    let flags = [
        "--batch-size",
        "16",
        "--iterations",
        "6",
        "--eval-every",
        "6",
    ];
    let said = ok_args(&resnet8_args(&data, &out, &flags));
    assert!(said.contains("test top-1 error"), "{said}");

    // A truncated batch and an out-of-range label name the file and the byte offset.
    let batch = dir.join("data_batch_3.bin");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 10]).unwrap();
    let out2 = scratch("cifar-run-2");
    let args = [
        "train",
        "--arch",
        "resnet8",
        "--data",
        &data,
        "--iterations",
        "1",
        "--out",
        out2.to_str().unwrap(),
    ];
    let err = refused(&args);
    assert!(
        err.contains("data_batch_3.bin") && err.contains("byte offset 95263"),
        "{err}"
    );
    let mut bytes = bytes.clone();
    bytes[3073] = 42;
    std::fs::write(&batch, &bytes).unwrap();
    let err = refused(&args);
    assert!(
        err.contains("data_batch_3.bin: label 42 at byte offset 3073"),
        "{err}"
    );
    std::fs::remove_file(&batch).unwrap();
    let err = refused(&args);
    assert!(err.contains("data_batch_3.bin"), "{err}");
    let err = refused(&[
        "train",
        "--arch",
        "resnet8",
        "--data",
        "cifar10:/nonexistent/dir",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(err.contains("/nonexistent/dir"), "{err}");
}

/// Serves `body` once per connection on 127.0.0.1 (a stand-in for the dataset's server).
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/cifar-10-binary.tar.gz",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

#[test]
fn data_fetch_checks_the_checksum_then_unpacks() {
    // A small archive in the official layout.
    let staging = scratch("staging").join("cifar-10-batches-bin");
    shapes_as_cifar(&staging, 20);
    let mut tarball = Vec::new();
    {
        let encoder = flate2::write::GzEncoder::new(&mut tarball, flate2::Compression::fast());
        let mut tar = tar::Builder::new(encoder);
        tar.append_dir_all("cifar-10-batches-bin", &staging)
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let md5: String = {
        use md5::Digest;
        md5::Md5::digest(&tarball)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let url = serve(tarball);

    let wrong = scratch("fetched-wrong");
    let err = refused(&[
        "data",
        "fetch",
        "cifar10",
        "--url",
        &url,
        "--to",
        wrong.to_str().unwrap(),
    ]);
    assert!(
        err.contains("checksum mismatch") && err.contains("nothing was unpacked"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&wrong).unwrap().count(), 0);

    let to = scratch("fetched");
    let said = ok(&[
        "data",
        "fetch",
        "cifar10",
        "--url",
        &url,
        "--md5",
        &md5,
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(said.contains("50 train / 10 test images"), "{said}");
    assert!(to.join("cifar-10-batches-bin/test_batch.bin").exists());
}

#[test]
fn a_batch_too_large_for_memory_is_refused_before_training() {
    let out = scratch("huge-batch");
    let err = refused(&[
        "train",
        "--arch",
        "resnet110",
        "--data",
        "synthetic",
        "--batch-size",
        "40000",
        "--iterations",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("a batch of 40000 needs about") && err.contains("or less (--batch-size)"),
        "{err}"
    );
    assert!(!out.join("checkpoint.bpk").exists());
}

/// A folder of class folders with non-ASCII names trains through `--data folder:` and
/// evaluates, the confusion matrix printing the names cut by characters (not bytes).
#[test]
fn a_folder_with_non_ascii_class_names_trains_and_evaluates() {
    let dir = scratch("unicode-folder");
    let shapes = resnet::data::synthetic::Shapes { seed: 5, len: 40 };
    let names = ["café-crème-brûlée", "日本語のクラス名"];
    for i in 0..40 {
        let class = dir.join(names[i % 2]);
        std::fs::create_dir_all(&class).unwrap();
        let planar = shapes.render(i);
        let image = image::RgbImage::from_fn(32, 32, |x, y| {
            let p = (y * 32 + x) as usize;
            image::Rgb([planar[p], planar[1024 + p], planar[2048 + p]])
        });
        image.save(class.join(format!("{i}.png"))).unwrap();
    }
    let run = scratch("unicode-run");
    let data = format!("folder:{}", dir.display());
    ok_args(&resnet8_args(
        &data,
        &run,
        &["--batch-size", "8", "--iterations", "3"],
    ));
    let out = ok(&[
        "eval",
        "--weights",
        run.join("model.bpk").to_str().unwrap(),
        "--data",
        &data,
    ]);
    assert!(
        out.contains("café-c") && out.contains("日本語のクラ"),
        "{out}"
    );
}

/// Each step's `field` in a run's metrics.jsonl.
fn step_values(run: &Path, field: &str) -> Vec<f64> {
    read_metrics(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|m| m["kind"] == "step")
        .map(|m| m[field].as_f64().unwrap())
        .collect()
}

/// A short run of ResNet-8 on Shapes with `extra` flags; its directory.
fn flagged_run(name: &str, iterations: usize, extra: &[&str]) -> PathBuf {
    let out = scratch(name);
    let iterations = iterations.to_string();
    #[rustfmt::skip]
    let base = [
        "--train-size", "128", "--test-size", "32", "--batch-size", "8", "--seed", "5",
        "--iterations", &iterations,
    ];
    ok_args(&resnet8_args(
        "synthetic",
        &out,
        &[&base[..], extra].concat(),
    ));
    out
}

fn assert_rates(run: &Path, expected: &[f64]) {
    let rates = step_values(run, "lr");
    assert_eq!(rates.len(), expected.len(), "{rates:?}");
    for (step, (r, e)) in rates.iter().zip(expected).enumerate() {
        assert!(
            (r - e).abs() < 1e-9 * e.max(1e-3),
            "step {step}: lr {r}, expected {e}: {rates:?}"
        );
    }
}

/// The schedule and optimizer flags reach the run: each step's rate is the documented
/// schedule's (worked out here by hand), and Nesterov / no-decay change the updates.
#[test]
fn schedule_and_optimizer_flags_change_the_run() {
    // Step: ×0.1 every 3 iterations.
    let run = flagged_run(
        "step",
        8,
        &["--lr", "0.1", "--schedule", "step", "--step-every", "3"],
    );
    assert_rates(&run, &[0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001]);
    // Cosine over 8 iterations with 2 of linear warm-up: 0.1·(t+1)/2, then
    // 0.1·½(1 + cos(π·(t−2)/6)).
    let run = flagged_run(
        "cosine",
        8,
        &["--lr", "0.1", "--schedule", "cosine", "--warmup", "2"],
    );
    assert_rates(
        &run,
        &[
            0.05,
            0.1,
            0.1,
            0.093_301_270_189_221_94,
            0.075,
            0.05,
            0.025,
            0.006_698_729_810_778_07,
        ],
    );
    // Plateau: evaluated every step at a rate too small to improve the test error, it
    // decays ÷10 once the error has stalled more than 3 evaluations; the constant
    // schedule never does.
    let plateau = ["--lr", "1e-7", "--eval-every", "1", "--schedule", "plateau"];
    let rates = step_values(&flagged_run("plateau", 12, &plateau), "lr");
    assert_eq!(rates[0], 1e-7, "{rates:?}");
    assert!(
        rates
            .windows(2)
            .all(|w| w[1] == w[0] || (w[1] - w[0] / 10.0).abs() < 1e-20),
        "{rates:?}"
    );
    assert!(
        rates[11] < 1e-7,
        "the plateau schedule never decayed: {rates:?}"
    );
    let constant = [
        "--lr",
        "1e-7",
        "--eval-every",
        "1",
        "--schedule",
        "constant",
    ];
    assert_rates(&flagged_run("constant", 12, &constant), &[1e-7; 12]);

    // Nesterov and BN/bias exemption from decay: the same first step (same init and data),
    // then other losses than plain SGD's; the run's config records them.
    let sgd = ["--lr", "0.05", "--weight-decay", "0.05"];
    let base = step_values(&flagged_run("sgd", 3, &sgd), "loss");
    for (name, flag, key) in [
        ("nesterov", "--nesterov", "nesterov"),
        ("no-decay", "--no-decay-bn-bias", "decayBnAndBias"),
    ] {
        let run = flagged_run(name, 3, &[&sgd[..], &[flag]].concat());
        let losses = step_values(&run, "loss");
        assert_eq!(losses[0], base[0], "{name}: the first step differs");
        assert!(
            losses[2] != base[2],
            "{name} changed nothing: {losses:?} vs {base:?}"
        );
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            config["spec"]["optimizer"][key],
            serde_json::json!(flag == "--nesterov"),
            "{name}: {config}"
        );
    }
}
