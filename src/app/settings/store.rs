//! Where the settings are kept between runs: eframe's state file on the desktop (read by the
//! app itself, so a damaged or newer one is kept and reported), the browser's storage in the
//! page.

use std::path::PathBuf;

use serde::Deserialize;

use super::{SETTINGS_VERSION, Settings, SettingsV1};

/// Where eframe keeps the app's state (`app.ron`), as eframe itself finds it from the app id.
pub fn default_state_file(app_id: &str) -> Option<PathBuf> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        eframe::storage_dir(app_id).map(|d| d.join("app.ron"))
    }
    // The page keeps its settings in the browser's storage (eframe's), not in a file.
    #[cfg(target_arch = "wasm32")]
    {
        let _ = app_id;
        None
    }
}

/// The settings eframe keeps in the browser's storage (where there is no state file); a value
/// that cannot be used (a newer difflab's) gives the defaults and says so.
pub fn restore_from_storage(storage: &dyn eframe::Storage) -> (Settings, Option<String>) {
    match storage.get_string(eframe::APP_KEY) {
        None => (Settings::default(), None),
        Some(text) => match parse_stored(&text) {
            Ok(settings) => (settings.sanitised(), None),
            Err(why) => (
                Settings::default(),
                Some(format!(
                    "The settings saved in this browser could not be used ({why}): difflab \
                     started on the defaults."
                )),
            ),
        },
    }
}

/// The settings stored in eframe's state file, and a one-time message when the file was there
/// but could not be used (corrupt, or written by a newer difflab): then the app starts on the
/// defaults and the bad file is copied beside itself (`app.ron.bad-<unix seconds>`) before
/// eframe overwrites it on the next save.
pub fn restore_settings(file: Option<&std::path::Path>) -> (Settings, Option<String>) {
    let Some(path) = file else {
        return (Settings::default(), None);
    };
    let Ok(bytes) = std::fs::read(path) else {
        // No file yet (the first start): the defaults, nothing to say.
        return (Settings::default(), None);
    };
    match parse_state(&bytes) {
        Ok(settings) => (settings.sanitised(), None),
        Err(why) => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut copy = path.as_os_str().to_owned();
            copy.push(format!(".bad-{stamp}"));
            let copy = PathBuf::from(copy);
            let kept = match std::fs::write(&copy, &bytes) {
                Ok(()) => format!("a copy is kept at {}", copy.display()),
                Err(e) => format!("it could not be copied ({e})"),
            };
            let message = format!(
                "The saved settings in {} could not be used ({why}): difflab started on the defaults; {kept}.",
                path.display()
            );
            (Settings::default(), Some(message))
        }
    }
}

/// Reads eframe's state file (a RON map of strings) and the settings under eframe's app key.
fn parse_state(bytes: &[u8]) -> std::result::Result<Settings, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not text".to_string())?;
    let map: std::collections::HashMap<String, String> =
        ron::from_str(text).map_err(|e| format!("the file is damaged: {e}"))?;
    let Some(stored) = map.get(eframe::APP_KEY) else {
        // egui's window state only (the app never saved): nothing was lost.
        return Ok(Settings::default());
    };
    parse_stored(stored)
}

/// The app's own stored value (RON), of any format version up to this one.
fn parse_stored(stored: &str) -> std::result::Result<Settings, String> {
    /// Only the version, read first so a newer format is named rather than misread.
    #[derive(Deserialize)]
    struct Version {
        #[serde(default = "first_version")]
        version: u64,
    }
    fn first_version() -> u64 {
        1
    }
    let Version { version } =
        ron::from_str(stored).map_err(|e| format!("the settings are damaged: {e}"))?;
    if version > u64::from(SETTINGS_VERSION) {
        return Err(format!(
            "they were saved by a newer difflab (settings format {version}; this one reads up to {SETTINGS_VERSION})"
        ));
    }
    let damaged = |e: ron::error::SpannedError| format!("the settings are damaged: {e}");
    if version <= 1 {
        // Format 1: one flat struct, regrouped per panel.
        return ron::from_str::<SettingsV1>(stored)
            .map(Settings::from)
            .map_err(damaged);
    }
    ron::from_str(stored).map_err(damaged)
}
