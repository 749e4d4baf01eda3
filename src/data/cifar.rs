//! CIFAR-10 / CIFAR-100 binary batches (<https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! A record is the label byte(s) then 3,072 pixel bytes: 1,024 red, 1,024 green, 1,024 blue,
//! rows top to bottom. CIFAR-10 has one label byte; CIFAR-100 two (coarse, then fine; the
//! fine label is the class). A file holds `size / record` records, whatever that count is.

use super::image_set::ImageSet;

/// Pixel bytes per image.
pub const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10's class names.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which of the two layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// One label byte, 10 classes.
    Cifar10,
    /// Two label bytes (coarse, fine), 100 fine classes.
    Cifar100,
}

impl Variant {
    /// Bytes per record.
    pub fn record_size(self) -> usize {
        self.label_bytes() + PIXELS
    }

    fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
}

/// Why a CIFAR file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CifarError {
    /// Empty, or not a whole number of records.
    #[error(
        "{file}: {size} bytes is not a whole number of {record}-byte {variant:?} records (the last record, at byte offset {offset}, is cut short)"
    )]
    Truncated {
        /// The file.
        file: String,
        /// Its size.
        size: usize,
        /// Bytes per record.
        record: usize,
        /// The layout.
        variant: Variant,
        /// Offset of the incomplete record.
        offset: usize,
    },
    /// No records at all.
    #[error("{file}: the file is empty")]
    Empty {
        /// The file.
        file: String,
    },
    /// A label outside the classes.
    #[error("{file}: label {label} at byte offset {offset} is out of range for {classes} classes")]
    Label {
        /// The file.
        file: String,
        /// The label read.
        label: u8,
        /// Its byte offset.
        offset: usize,
        /// Number of classes.
        classes: usize,
    },
}

/// Parses one binary batch file's bytes; `file` names it in errors.
pub fn parse(bytes: &[u8], variant: Variant, file: &str) -> Result<ImageSet, CifarError> {
    let record = variant.record_size();
    if bytes.is_empty() {
        return Err(CifarError::Empty { file: file.into() });
    }
    if bytes.len() % record != 0 {
        return Err(CifarError::Truncated {
            file: file.into(),
            size: bytes.len(),
            record,
            variant,
            offset: bytes.len() / record * record,
        });
    }
    let count = bytes.len() / record;
    let classes = variant.num_classes();
    let mut set = ImageSet {
        labels: Vec::with_capacity(count),
        pixels: Vec::with_capacity(count * PIXELS),
        classes: match variant {
            Variant::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            Variant::Cifar100 => (0..100).map(|i| format!("class {i}")).collect(),
        },
    };
    for (i, chunk) in bytes.chunks_exact(record).enumerate() {
        let label_at = variant.label_bytes() - 1;
        let label = chunk[label_at];
        if label as usize >= classes {
            return Err(CifarError::Label {
                file: file.into(),
                label,
                offset: i * record + label_at,
                classes,
            });
        }
        set.labels.push(label as u32);
        set.pixels
            .extend_from_slice(&chunk[variant.label_bytes()..]);
    }
    Ok(set)
}

/// Serialises images in the binary layout (for tests, and for `resnet data` exports).
pub fn encode(set: &ImageSet, variant: Variant) -> Vec<u8> {
    let mut out = Vec::with_capacity(set.len() * variant.record_size());
    for i in 0..set.len() {
        if variant == Variant::Cifar100 {
            out.push(0); // coarse label: unused here
        }
        out.push(set.labels[i] as u8);
        out.extend_from_slice(set.image(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize, classes: usize) -> ImageSet {
        ImageSet {
            labels: (0..n).map(|i| (i % classes) as u32).collect(),
            pixels: (0..n * PIXELS).map(|i| (i % 251) as u8).collect(),
            classes: vec![],
        }
    }

    #[test]
    fn reads_records_in_the_official_layout() {
        let original = set(7, 10);
        let parsed = parse(
            &encode(&original, Variant::Cifar10),
            Variant::Cifar10,
            "data_batch_1.bin",
        )
        .unwrap();
        assert_eq!(parsed.labels, original.labels);
        assert_eq!(parsed.pixels, original.pixels);
        assert_eq!(parsed.classes[0], "airplane");
        // CIFAR-100: the second label byte is the fine class.
        let original = set(5, 100);
        let bytes = encode(&original, Variant::Cifar100);
        assert_eq!(bytes.len(), 5 * 3074);
        let parsed = parse(&bytes, Variant::Cifar100, "train.bin").unwrap();
        assert_eq!(parsed.labels, original.labels);
    }

    #[test]
    fn truncated_files_name_the_offset() {
        let bytes = encode(&set(3, 10), Variant::Cifar10);
        let err = parse(
            &bytes[..bytes.len() - 100],
            Variant::Cifar10,
            "data_batch_1.bin",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "data_batch_1.bin: 9119 bytes is not a whole number of 3073-byte Cifar10 records \
             (the last record, at byte offset 6146, is cut short)"
        );
        assert!(matches!(
            parse(&[], Variant::Cifar10, "f"),
            Err(CifarError::Empty { .. })
        ));
    }

    #[test]
    fn labels_out_of_range_name_the_offset() {
        let mut bytes = encode(&set(3, 10), Variant::Cifar10);
        bytes[3073] = 12;
        let err = parse(&bytes, Variant::Cifar10, "test_batch.bin").unwrap_err();
        assert_eq!(
            err.to_string(),
            "test_batch.bin: label 12 at byte offset 3073 is out of range for 10 classes"
        );
    }

    #[test]
    fn split_is_a_seeded_partition() {
        let (rest, held) = set(100, 10).split(0.2, 3);
        assert_eq!((rest.len(), held.len()), (80, 20));
        let (_, again) = set(100, 10).split(0.2, 3);
        assert_eq!(held, again);
        let total: usize = rest
            .labels
            .iter()
            .chain(&held.labels)
            .map(|&l| l as usize)
            .sum();
        assert_eq!(total, (0..100).map(|i| i % 10).sum::<usize>());
    }
}
