//! NumPy `.npy` arrays of little-endian float32 in C order: the exchange format of
//! `resnet logits`, so that any framework can check parity with `np.save` / `np.load`.
//!
//! Format reference: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>

use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// A float32 array read from or written to a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyF32 {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements in C (row-major) order.
    pub data: Vec<f32>,
}

/// Why a `.npy` file was refused.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The bytes are not a `.npy` file this reader accepts.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong, in a sentence.
        reason: String,
    },
}

impl NpyF32 {
    /// Reads a float32 array; refuses other dtypes, Fortran order and truncated data.
    pub fn read(path: &Path) -> Result<Self, NpyError> {
        let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|reason| NpyError::Format {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Writes the array as a version 1.0 `.npy` file.
    pub fn write(&self, path: &Path) -> Result<(), NpyError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| NpyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Parses `.npy` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err("not a .npy file (no \\x93NUMPY magic)".into());
        }
        let (header_len, header_start): (usize, usize) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => return Err(format!("unsupported .npy version {v}")),
        };
        // checked: a u32 header length overflows a 32-bit (wasm) usize.
        let header = header_start
            .checked_add(header_len)
            .and_then(|end| bytes.get(header_start..end))
            .ok_or("truncated .npy header")?;
        let data_start = header_start + header.len();
        let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;

        let descr = dict_value(header, "descr")
            .and_then(quoted)
            .ok_or("the .npy header has no 'descr'")?;
        if !matches!(descr, "<f4" | "=f4" | "f4") {
            return Err(format!(
                "dtype is '{descr}', expected float32 ('<f4'); convert with x.astype(np.float32)"
            ));
        }
        if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
            return Err("array is in Fortran order; save np.ascontiguousarray(x)".into());
        }
        let shape = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
        let shape = parse_shape(shape)?;

        let payload = &bytes[data_start..];
        // A crafted shape can overflow the product: count in checked steps.
        let needed = shape
            .iter()
            .try_fold(4usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("shape {shape:?} is too large to be an array"))?;
        if payload.len() != needed {
            return Err(format!(
                "shape {shape:?} needs {needed} bytes of data, the file has {}",
                payload.len()
            ));
        }
        let data = payload
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self { shape, data })
    }

    /// Serialises as a version 1.0 `.npy` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + self.data.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in &self.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// The text after `'key':` in a Python dict literal, up to the end of the header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// The contents of the quoted string at the start of `text`.
fn quoted(text: &str) -> Option<&str> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &text[1..];
    Some(&rest[..rest.find(quote)?])
}

/// Parses the `(2, 3, 224, 224)` tuple that follows `'shape':`.
fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.split(')').next())
        .ok_or("malformed 'shape' in the .npy header")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse()
                .map_err(|_| format!("malformed dimension '{d}' in the .npy shape"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3))`, byte for byte.
    const NUMPY_2X3: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \n\x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@\x00\x00\xa0@";

    #[test]
    fn reads_and_writes_what_numpy_writes() {
        let array = NpyF32::from_bytes(NUMPY_2X3).unwrap();
        assert_eq!(array.shape, vec![2, 3]);
        assert_eq!(array.data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(array.to_bytes(), NUMPY_2X3);
    }

    #[test]
    fn a_shape_whose_size_overflows_is_an_error_not_a_panic() {
        let header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}, 4), }}\n",
            u64::MAX / 2,
            u64::MAX / 2
        );
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let err = NpyF32::from_bytes(&bytes).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn refuses_other_dtypes_and_truncation() {
        let mut f8 = NUMPY_2X3.to_vec();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at..at + 3].copy_from_slice(b"<f8");
        let err = NpyF32::from_bytes(&f8).unwrap_err();
        assert!(err.contains("'<f8'"), "{err}");
        let err = NpyF32::from_bytes(&NUMPY_2X3[..NUMPY_2X3.len() - 2]).unwrap_err();
        assert!(err.contains("needs 24 bytes"), "{err}");
        assert!(
            NpyF32::from_bytes(b"PNG....")
                .unwrap_err()
                .contains("magic")
        );
    }

    #[test]
    fn one_dimensional_shapes_keep_their_comma() {
        let array = NpyF32 {
            shape: vec![3],
            data: vec![1.0, 2.0, 3.0],
        };
        let bytes = array.to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains("'shape': (3,)"));
        assert_eq!((bytes.len() - 12) % 64, 0);
        assert_eq!(NpyF32::from_bytes(&bytes).unwrap(), array);
    }
}
