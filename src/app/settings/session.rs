//! Session files: every setting, seed and model choice in one JSON file, so a class can
//! reproduce exactly what the teacher showed. Opening a bad file changes nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Settings, SettingsV1};
use crate::data::image_io::write_atomic;
use crate::error::{DiffError, Result};

/// The session format this build writes (it reads format 1, of difflab up to 2026-11-26, too).
pub const SESSION_VERSION: u32 = 2;

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
    let bytes = crate::app::files::read(path).map_err(|e| DiffError::file(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| DiffError::file(path, "not text"))?;
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
    let corrupt =
        |e: serde_json::Error| DiffError::file(path, format!("a corrupt difflab session ({e})"));
    if version <= 1 {
        // Format 1 kept every setting in one flat struct: read it as such and regroup.
        let settings = value.get("settings").cloned().unwrap_or_default();
        let v1: SettingsV1 = serde_json::from_value(settings).map_err(corrupt)?;
        return Ok(Settings::from(v1).sanitised());
    }
    let s: Session = serde_json::from_value(value).map_err(corrupt)?;
    Ok(s.settings.sanitised())
}
