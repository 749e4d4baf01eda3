//! Which data a run trains on, written once for the CLI, the page and the npm package: the
//! `--data` strings, the page's dataset keys and a run spec's `data` field all parse into a
//! [DataSpec], and the embedded Shapes are built from it in one place.

use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::synthetic::{self, SHAPES_SEED, Shapes};

/// Share of the images held out as a test set when a folder has no `test/` split.
pub const HELD_OUT: f64 = 0.1;
/// Seed of that hold-out (fixed, so the split is the same on every machine).
pub const HELD_OUT_SEED: u64 = SHAPES_SEED;
/// The most Shapes images a split may have: they are rendered on demand, but the data order
/// holds one index per image (80 MB at this size).
pub const MAX_SHAPES: usize = 10_000_000;

/// Where a run's images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DataSpec {
    /// The embedded Shapes (10 classes, rendered from a fixed seed).
    #[serde(rename_all = "camelCase")]
    Shapes {
        /// Training images (50,000 by default, as CIFAR-10).
        #[serde(default = "default_train")]
        train_size: usize,
        /// Test images (10,000 by default).
        #[serde(default = "default_test")]
        test_size: usize,
    },
    /// CIFAR-10 binary batches (a directory natively; dropped files in the page).
    Cifar10 {
        /// The directory, when known.
        #[serde(default)]
        dir: Option<String>,
    },
    /// CIFAR-100 binary batches.
    Cifar100 {
        /// The directory, when known.
        #[serde(default)]
        dir: Option<String>,
    },
    /// A folder of class folders (`train/` + `test/` or `val/`, or all images and a
    /// held-out 10%), shrunk to 32x32 and held in memory.
    Folder {
        /// The directory, when known.
        #[serde(default)]
        dir: Option<String>,
    },
    /// ImageNet's layout (`train/<wnid>/`, `val/<wnid>/` or a flat `val/` with a labels
    /// file) at full size, streamed from disk (natively).
    #[serde(rename = "imagenet")]
    ImageNet {
        /// The directory, when known.
        #[serde(default)]
        dir: Option<String>,
    },
}

fn default_train() -> usize {
    synthetic::DEFAULT_TRAIN
}

fn default_test() -> usize {
    synthetic::DEFAULT_TEST
}

impl Default for DataSpec {
    fn default() -> Self {
        Self::Shapes {
            train_size: default_train(),
            test_size: default_test(),
        }
    }
}

impl DataSpec {
    /// Parses `synthetic` / `shapes` (optionally `shapes:TRAIN` or `shapes:TRAIN:TEST`),
    /// `cifar10:DIR`, `cifar100:DIR`, `folder:DIR` or `imagenet:DIR`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (kind, rest) = match text.split_once(':') {
            Some((kind, rest)) => (kind, Some(rest)),
            None => (text, None),
        };
        let dir = || rest.filter(|d| !d.is_empty()).map(str::to_string);
        match kind {
            "synthetic" | "shapes" => {
                let mut sizes = rest.unwrap_or("").split(':').filter(|s| !s.is_empty());
                let mut size = |default: usize, what: &str| match sizes.next() {
                    Some(s) => s
                        .parse::<usize>()
                        .map_err(|_| format!("'{s}' is not a number of {what} images")),
                    None => Ok(default),
                };
                let spec = Self::Shapes {
                    train_size: size(default_train(), "training")?,
                    test_size: size(default_test(), "test")?,
                };
                spec.validate()?;
                Ok(spec)
            }
            "cifar10" => Ok(Self::Cifar10 { dir: dir() }),
            "cifar100" => Ok(Self::Cifar100 { dir: dir() }),
            "folder" => Ok(Self::Folder { dir: dir() }),
            "imagenet" => Ok(Self::ImageNet { dir: dir() }),
            other => Err(format!(
                "unknown data '{other}': expected synthetic, cifar10:DIR, cifar100:DIR, \
                 folder:DIR or imagenet:DIR"
            )),
        }
    }

    /// Refuses sizes that cannot be a dataset.
    pub fn validate(&self) -> Result<(), String> {
        if let Self::Shapes {
            train_size,
            test_size,
        } = self
        {
            for (n, what) in [(train_size, "training"), (test_size, "test")] {
                if !(1..=MAX_SHAPES).contains(n) {
                    return Err(format!(
                        "{n} Shapes {what} images: choose between 1 and {MAX_SHAPES}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The embedded Shapes' training and test sets, if this is Shapes.
    pub fn shapes(&self) -> Result<Option<(Dataset, Dataset)>, String> {
        self.validate()?;
        Ok(match *self {
            Self::Shapes {
                train_size,
                test_size,
            } => Some((
                Dataset::Shapes(Shapes {
                    len: train_size,
                    ..Shapes::train(SHAPES_SEED)
                }),
                Dataset::Shapes(Shapes {
                    len: test_size,
                    ..Shapes::test(SHAPES_SEED)
                }),
            )),
            _ => None,
        })
    }

    /// A description for people, run directories and model cards.
    pub fn describe(&self) -> String {
        let at =
            |dir: &Option<String>| dir.as_ref().map(|d| format!(" in {d}")).unwrap_or_default();
        match self {
            Self::Shapes {
                train_size,
                test_size,
            } => format!("Shapes (embedded, {train_size} train / {test_size} test images)"),
            Self::Cifar10 { dir } => format!("CIFAR-10{}", at(dir)),
            Self::Cifar100 { dir } => format!("CIFAR-100{}", at(dir)),
            Self::Folder { dir } => format!("an image folder{}", at(dir)),
            Self::ImageNet { dir } => format!("ImageNet-layout images{}", at(dir)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_strings_parse_into_one_spec() {
        assert_eq!(DataSpec::parse("synthetic").unwrap(), DataSpec::default());
        assert_eq!(
            DataSpec::parse("shapes:512:100").unwrap(),
            DataSpec::Shapes {
                train_size: 512,
                test_size: 100
            }
        );
        assert_eq!(
            DataSpec::parse("cifar10:/data/c10").unwrap(),
            DataSpec::Cifar10 {
                dir: Some("/data/c10".into())
            }
        );
        assert_eq!(
            DataSpec::parse("imagenet:/data/in1k").unwrap(),
            DataSpec::ImageNet {
                dir: Some("/data/in1k".into())
            }
        );
        assert!(
            DataSpec::parse("imagenette:x")
                .unwrap_err()
                .contains("unknown data")
        );
        // A size that would make the data order allocate without bound is refused.
        let err = DataSpec::parse("shapes:1000000000000").unwrap_err();
        assert!(err.contains("between 1 and"), "{err}");
        assert!(DataSpec::parse("shapes:0").is_err());
        assert!(
            DataSpec::parse("shapes:many")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn the_spec_round_trips_through_json() {
        let spec = DataSpec::parse("shapes:512").unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"shapes","trainSize":512,"testSize":10000}"#
        );
        assert_eq!(serde_json::from_str::<DataSpec>(&json).unwrap(), spec);
        let (train, test) = spec.shapes().unwrap().unwrap();
        assert_eq!((train.len(), test.len()), (512, 10_000));
    }
}
