//! The file dialogs, at the platform's edge: the desktop's native dialogs (rfd). The browser
//! has no paths: there a file is opened by dropping it on the page, and the dialogs say so in
//! the banner instead of doing nothing.

use std::path::PathBuf;

/// What the page says where the desktop would open a file to read.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub const WEB_NO_DIALOG: &str = "In the browser, drop the file on the page to open it \
     (an image, a .safetensors U-Net or a .json session)";

/// Asks for a file to open, of the kind `what` with these extensions. `Err` with what to do
/// instead where there are no dialogs (the browser).
#[cfg_attr(not(target_arch = "wasm32"), allow(clippy::unnecessary_wraps))]
pub fn pick_file(what: &str, extensions: &[&str]) -> Result<Option<PathBuf>, &'static str> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        Ok(rfd::FileDialog::new()
            .add_filter(what, extensions)
            .pick_file())
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (what, extensions);
        Err(WEB_NO_DIALOG)
    }
}

/// Asks where to save a file, suggesting `name` (the browser: a download of that name).
#[allow(clippy::unnecessary_wraps)]
pub fn save_file(name: &str) -> Result<Option<PathBuf>, &'static str> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        Ok(rfd::FileDialog::new().set_file_name(name).save_file())
    }
    // The page downloads what is saved (`write_atomic`), under this name.
    #[cfg(target_arch = "wasm32")]
    {
        Ok(Some(PathBuf::from(name)))
    }
}

/// Files the page was given (dropped on it), by name: the browser's stand-in for paths, so
/// that the panels open them as they open a file on the desktop.
#[cfg(target_arch = "wasm32")]
static WEB_FILES: std::sync::Mutex<Vec<(PathBuf, std::sync::Arc<[u8]>)>> =
    std::sync::Mutex::new(Vec::new());

/// Keeps a file the page was given; the path it opens by (its name) is returned. Only the
/// newest few are kept (a page has no disk).
#[cfg(target_arch = "wasm32")]
pub fn keep_web_file(name: &str, bytes: Vec<u8>) -> PathBuf {
    let path = PathBuf::from(name);
    if let Ok(mut files) = WEB_FILES.lock() {
        files.retain(|(p, _)| *p != path);
        files.push((path.clone(), bytes.into()));
        let excess = files.len().saturating_sub(4);
        files.drain(..excess);
    }
    path
}

/// A file's bytes: from the disk on the desktop, from the files the page was given in the
/// browser.
pub fn read(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::fs::read(path)
    }
    #[cfg(target_arch = "wasm32")]
    {
        WEB_FILES
            .lock()
            .ok()
            .and_then(|files| {
                files
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, b)| b.to_vec())
            })
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not in this page: drop the file on the page to open it",
                )
            })
    }
}

/// An image file in colour, fitted within `max_side` (see [`crate::data::image_io::load_rgb`]).
pub fn load_rgb(
    path: &std::path::Path,
    max_side: u32,
) -> crate::Result<crate::data::image_io::ImageArray> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::data::image_io::load_rgb(path, max_side)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let bytes = read(path).map_err(|e| crate::DiffError::file(path, e))?;
        crate::data::image_io::decode_rgb(&bytes, &path.display().to_string(), max_side)
    }
}

/// What [`open`](super::unet_file::open) asks of a file's metadata, for a file the page was
/// given.
#[cfg(target_arch = "wasm32")]
pub struct WebMetadata(u64);

#[cfg(target_arch = "wasm32")]
impl WebMetadata {
    /// Always a file (a method, as `std::fs::Metadata`'s is).
    #[allow(clippy::unused_self)]
    pub fn is_file(&self) -> bool {
        true
    }
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.0
    }
}

/// The metadata of a file the page was given.
#[cfg(target_arch = "wasm32")]
pub fn web_metadata(path: &std::path::Path) -> std::io::Result<WebMetadata> {
    read(path).map(|b| WebMetadata(b.len() as u64))
}
