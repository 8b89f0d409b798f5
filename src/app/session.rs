//! Session files: every setting, seed and model choice in one JSON file, so a class can
//! reproduce exactly what the teacher showed. Opening a bad file changes nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::settings::Settings;
use crate::data::image_io::write_atomic;
use crate::error::{DiffError, Result};

/// The session format this build writes and reads.
pub const SESSION_VERSION: u32 = 1;

/// A saved session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// What wrote it ("difflab").
    pub app: String,
    /// The format version.
    pub version: u32,
    /// Every setting.
    pub settings: Settings,
}

/// Writes the settings to `path` (atomically).
pub fn save_session(settings: &Settings, path: &Path) -> Result<()> {
    let s = Session {
        app: "difflab".into(),
        version: SESSION_VERSION,
        settings: settings.clone(),
    };
    let json = serde_json::to_string_pretty(&s).map_err(|e| DiffError::invalid(e.to_string()))?;
    write_atomic(path, json.as_bytes())
}

/// Reads a session, refusing files that are not one, are corrupt, or come from a newer difflab.
pub fn load_session(path: &Path) -> Result<Settings> {
    let text = std::fs::read_to_string(path).map_err(|e| DiffError::file(path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        DiffError::file(path, format!("not a difflab session file (not JSON: {e})"))
    })?;
    if value.get("app").and_then(|a| a.as_str()) != Some("difflab") {
        return Err(DiffError::file(path, "not a difflab session file"));
    }
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if version > u64::from(SESSION_VERSION) {
        return Err(DiffError::file(
            path,
            format!(
                "this session was saved by a newer difflab (format {version}; this one reads up to {SESSION_VERSION})"
            ),
        ));
    }
    let s: Session = serde_json::from_value(value)
        .map_err(|e| DiffError::file(path, format!("a corrupt difflab session ({e})")))?;
    Ok(s.settings.sanitised())
}
