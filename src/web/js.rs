//! Small helpers every JavaScript-facing class uses: options objects in, plain objects out,
//! a clock.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use super::error::{Kind, js_error};

/// Parses an options object (absent means all defaults). It goes through `JSON.stringify`
/// so that whole numbers arrive as integers and nested, flattened structs parse like the
/// JSON files the CLI reads.
pub(crate) fn options<T: for<'de> Deserialize<'de> + Default>(
    value: JsValue,
) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    let text = js_sys::JSON::stringify(&value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| js_error(Kind::Input, "options must be a plain object"))?;
    serde_json::from_str(&text).map_err(|e| js_error(Kind::Input, format!("bad options: {e}")))
}

/// A plain JavaScript object (or array, number…) from serialisable data.
pub(crate) fn to_js<T: Serialize>(value: &T) -> JsValue {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .expect("plain data serialises")
}

/// Milliseconds since an arbitrary origin (`performance.now()` where available).
pub(crate) fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let now: js_sys::Function = now.dyn_into().ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// `[{ name, bytes }]` from JavaScript (dropped files, saved snapshots); `what` names the
/// items in the error a malformed entry gets.
pub(crate) fn named_bytes(
    items: &js_sys::Array,
    what: &str,
) -> Result<Vec<(String, Vec<u8>)>, JsValue> {
    items
        .iter()
        .map(|item| {
            let name = js_sys::Reflect::get(&item, &"name".into())?.as_string();
            let bytes = js_sys::Reflect::get(&item, &"bytes".into())?
                .dyn_into::<js_sys::Uint8Array>()
                .ok();
            match (name, bytes) {
                (Some(name), Some(bytes)) => Ok((name, bytes.to_vec())),
                _ => Err(js_error(
                    Kind::Input,
                    format!("each {what} must be {{ name: string, bytes: Uint8Array }}"),
                )),
            }
        })
        .collect()
}
