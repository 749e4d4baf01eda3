//! `resnet data fetch`: download an official CIFAR archive, verify its MD5, unpack it.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::cifar::Variant;

/// An official archive.
pub struct Archive {
    /// Where Alex Krizhevsky's page serves it.
    pub url: &'static str,
    /// The MD5 that page publishes.
    pub md5: &'static str,
    /// The folder it unpacks to.
    pub folder: &'static str,
}

/// The binary version of each dataset (the one this crate reads).
pub fn official(variant: Variant) -> Archive {
    match variant {
        Variant::Cifar10 => Archive {
            url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            md5: "c32a1d4ab5d03f1284b67883e8d87530",
            folder: "cifar-10-batches-bin",
        },
        Variant::Cifar100 => Archive {
            url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            md5: "03b5dce01913d631647c71ecec9e9cb8",
            folder: "cifar-100-binary",
        },
    }
}

/// Largest archive accepted (CIFAR-10's is 162 MB).
const MAX_BYTES: u64 = 512 << 20;

/// Downloads `url`, checks it against `md5` and unpacks it into `to`. Nothing is unpacked
/// unless the checksum matches; the download is kept in memory only.
pub fn fetch(url: &str, md5: &str, to: &Path) -> Result<PathBuf, String> {
    let response = ureq::get(url).call().map_err(|e| format!("{url}: {e}"))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{url}: download interrupted: {e}"))?;
    let digest = Md5::digest(&bytes);
    let got: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if !got.eq_ignore_ascii_case(md5) {
        return Err(format!(
            "{url}: checksum mismatch: MD5 is {got}, expected {md5} ({} bytes downloaded); nothing was unpacked",
            bytes.len()
        ));
    }
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    // `unpack` refuses entries that would escape `to` (absolute paths, `..`).
    archive
        .unpack(to)
        .map_err(|e| format!("{url}: cannot unpack into {}: {e}", to.display()))?;
    Ok(to.to_path_buf())
}
