//! The layout, the loader's order and resume, and bad files, on generated folders.

use std::path::{Path, PathBuf};

use super::sample::{SAMPLE_WNIDS, write_sample_folder};
use super::*;
use crate::data::dataset::Sampler;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-imagenet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn error(dir: &Path) -> String {
    match layout::scan(dir) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_layout_is_sorted_wnids_with_imagenets_names() {
    let dir = temp("layout");
    write_sample_folder(&dir, 3, 4, 2, 1).unwrap();
    let layout = layout::scan(&dir).unwrap();
    assert_eq!(layout.wnids, &SAMPLE_WNIDS[..3]);
    assert_eq!(layout.names, ["tench", "goldfish", "great white shark"]);
    assert_eq!(layout.train.len(), 12);
    assert_eq!(layout.val.labels, [0, 0, 1, 1, 2, 2]);
    assert!(
        layout
            .train
            .path(5)
            .ends_with("n01443537/n01443537_train_0001.JPEG")
    );

    // A validation class train/ lacks, and a missing one, are named.
    std::fs::create_dir_all(dir.join("val/n09999999")).unwrap();
    assert!(error(&dir).contains("n09999999"), "{}", error(&dir));
    std::fs::remove_dir_all(dir.join("val/n09999999")).unwrap();
    std::fs::remove_dir_all(dir.join("val/n01484850")).unwrap();
    let err = error(&dir);
    assert!(
        err.contains("lacks 1 of train/'s 3 classes: n01484850"),
        "{err}"
    );
}

#[test]
fn a_flat_val_is_labelled_by_its_file_and_disagreements_are_named() {
    let dir = temp("flat");
    write_sample_folder(&dir, 2, 2, 2, 2).unwrap();
    // Flatten val/: move every image up and write val_labels.txt.
    let mut lines = String::new();
    for wnid in &SAMPLE_WNIDS[..2] {
        for entry in std::fs::read_dir(dir.join("val").join(wnid)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::rename(&path, dir.join("val").join(&name)).unwrap();
            lines += &format!("{name} {wnid}\n");
        }
        std::fs::remove_dir(dir.join("val").join(wnid)).unwrap();
    }
    let err = error(&dir);
    assert!(err.contains("needs a labels file"), "{err}");
    std::fs::write(dir.join("val_labels.txt"), &lines).unwrap();
    let layout = layout::scan(&dir).unwrap();
    let mut labels = layout.val.labels.clone();
    labels.sort();
    assert_eq!(labels, [0, 0, 1, 1]);
    // Each file's label is its own line's.
    for (file, label) in layout.val.files.iter().zip(&layout.val.labels) {
        assert!(file.starts_with(SAMPLE_WNIDS[*label as usize]), "{file}");
    }
    // A label for a class train/ does not have; an image with no line; a line with no image.
    std::fs::write(
        dir.join("val_labels.txt"),
        lines.replace("n01443537\n", "n09999999\n"),
    )
    .unwrap();
    assert!(
        error(&dir).contains("'n09999999' is not a folder of train/"),
        "{}",
        error(&dir)
    );
    let first = lines.lines().next().unwrap().to_string() + "\n";
    std::fs::write(dir.join("val_labels.txt"), lines.replacen(&first, "", 1)).unwrap();
    assert!(
        error(&dir).contains("has no label for val/"),
        "{}",
        error(&dir)
    );
    std::fs::write(
        dir.join("val_labels.txt"),
        lines.clone() + "extra.JPEG n01440764\n",
    )
    .unwrap();
    assert!(
        error(&dir).contains("labels 5 images but val/ holds 4"),
        "{}",
        error(&dir)
    );
}

fn open_sample(name: &str, size: usize) -> (PathBuf, FileSet) {
    let dir = temp(name);
    write_sample_folder(&dir, 3, 5, 1, 3).unwrap();
    let (train, _) = open(&dir, 2).unwrap();
    (dir, train.resized(size))
}

#[test]
fn every_image_comes_once_per_epoch_in_a_new_order_and_a_resumed_epoch_is_identical() {
    let (_dir, files) = open_sample("order", 24);
    let mut sampler = Sampler::new(11, files.len(), 5);
    let mut epochs: Vec<Vec<usize>> = Vec::new();
    let mut batches = Vec::new();
    for _ in 0..2 {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (indices, pixels, labels) = files.next_batch(&mut sampler, 4, true);
            assert_eq!(pixels.len(), 5 * 3 * 24 * 24);
            assert_eq!(
                labels,
                indices.iter().map(|&i| files.label(i)).collect::<Vec<_>>()
            );
            seen.extend(indices);
            batches.push(pixels);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (0..15).collect::<Vec<_>>(), "each image once");
        epochs.push(seen);
    }
    assert_ne!(epochs[0], epochs[1], "a new permutation each epoch");
    assert_ne!(epochs[0], (0..15).collect::<Vec<_>>(), "shuffled");
    // The same epoch on another loader, resumed from a saved sampler after its first batch,
    // gives the same augmented pixels (nothing depends on which thread made them).
    let mut resumed = Sampler::new(11, files.len(), 5);
    let other = files.resized(24);
    other.next_batch(&mut resumed, 4, true);
    let mut resumed: Sampler =
        serde_json::from_str(&serde_json::to_string(&resumed).unwrap()).unwrap();
    let cold = files.resized(24);
    for expected in &batches[1..] {
        let (_, pixels, _) = cold.next_batch(&mut resumed, 4, true);
        assert!(&pixels == expected, "a resumed batch differs");
    }
    // Another seed augments differently.
    let mut fresh = Sampler::new(11, files.len(), 5);
    assert_ne!(
        files.resized(24).next_batch(&mut fresh, 5, true).1,
        batches[0]
    );
}

#[test]
fn corrupt_files_are_counted_and_replaced_cmyk_and_grey_are_converted() {
    let (dir, files) = open_sample("bad", 16);
    // Image 0 becomes a truncated JPEG, image 1 a CMYK one (pure cyan).
    let path0 = files.list.path(0);
    let bytes = std::fs::read(&path0).unwrap();
    std::fs::write(&path0, &bytes[..bytes.len() / 3]).unwrap();
    let cmyk = std::fs::read("tests/fixtures/cmyk.jpg").unwrap();
    std::fs::write(files.list.path(1), cmyk).unwrap();

    let (pixels, labels) = files.center_batch(&[0, 1]);
    assert_eq!(pixels.len(), 2 * 3 * 16 * 16);
    let skipped = files.skipped();
    assert_eq!(skipped.count, 1);
    assert!(
        skipped.examples[0].contains("n01440764_train_0000.JPEG"),
        "{skipped:?}"
    );
    // Image 0 was replaced by the next readable one (image 1), with that image's label.
    assert_eq!(&pixels[..3 * 256], &pixels[3 * 256..]);
    assert_eq!(labels, [files.label(1), files.label(1)]);
    // Cyan: no red, full green and blue.
    let plane = 256;
    let at = |c: usize| pixels[3 * plane + c * plane + 100];
    assert!(
        at(0) < 20 && at(1) > 235 && at(2) > 235,
        "{:?}",
        [at(0), at(1), at(2)]
    );

    // The greyscale validation image decodes to three equal planes.
    let (_, val) = open(&dir, 1).unwrap();
    let (grey, _) = val.resized(16).center_batch(&[0]);
    assert_eq!(&grey[..plane], &grey[plane..2 * plane]);
    // Evaluation leaves an unreadable image out instead of replacing it.
    assert_eq!(files.decode_batch(&[0, 1, 2]).len(), 2);
}
