//! Typed errors for JavaScript: every rejected promise carries an `Error` whose `name` is
//! `"ResNetError"` and whose `kind` says what went wrong, so an app can branch on it.

use wasm_bindgen::JsValue;

use crate::Error;

/// What kind of input or condition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Unknown architecture name or invalid configuration.
    Arch,
    /// Weights that are corrupt or for another model.
    Weights,
    /// An image that is not one, is truncated, or is too large.
    Image,
    /// Options or tensors of the wrong shape or type.
    Input,
    /// WebGPU missing, device lost, out of memory.
    Device,
    /// A dataset that cannot be used.
    Data,
    /// Training diverged (NaN/Inf).
    Diverged,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Arch => "arch",
            Kind::Weights => "weights",
            Kind::Image => "image",
            Kind::Input => "input",
            Kind::Device => "device",
            Kind::Data => "data",
            Kind::Diverged => "diverged",
        }
    }
}

/// A JavaScript `Error` named `ResNetError` with a `kind` property.
pub fn js_error(kind: Kind, message: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&message.to_string());
    error.set_name("ResNetError");
    let _ = js_sys::Reflect::set(&error, &"kind".into(), &kind.as_str().into());
    error.into()
}

impl From<Error> for JsValue {
    fn from(err: Error) -> JsValue {
        let kind = match &err {
            Error::UnknownArch(_)
            | Error::NotResNet(_)
            | Error::Config(_)
            | Error::NoArchitecture { .. } => Kind::Arch,
            Error::Weights(_) => Kind::Weights,
            Error::Image(_) => Kind::Image,
            Error::Npy(_) | Error::Labels { .. } | Error::Shape(_) | Error::Other(_) => Kind::Input,
            Error::Device(_) => Kind::Device,
        };
        js_error(kind, err)
    }
}
