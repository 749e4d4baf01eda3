//! Everything that crosses the boundary of the process as bytes: weights in every format,
//! `.npy` arrays.

#[cfg(not(target_family = "wasm"))]
pub mod atomic;
mod card;
pub mod npy;
mod weights;
mod write;

pub use card::{MAX_INPUT_SIZE, MIN_INPUT_SIZE, ModelCard, Normalization};
pub(crate) use weights::CARD_KEY;
pub use weights::{Precision, WeightsError, WeightsFile, WeightsFormat};
pub use write::{read_tensors, to_bytes_async};
#[cfg(not(target_family = "wasm"))]
pub use write::{save, to_bytes};
