//! Process-wide settings the binaries make once at start-up.

/// Keeps freed memory in the process instead of handing it back to the kernel at every free.
///
/// A U-Net step allocates and frees activation-sized buffers (a few MB each) by the hundred.
/// glibc's defaults give the top of the heap back (`brk`) as soon as 2× its adaptive mmap
/// threshold is free, so the next step faults every page in again: `perf stat` of a DDIM-50 run
/// of 128 digits counted 519,000 page faults and 1.8 s of 10 s in the kernel. With these two
/// settings the same run takes about 10,000 faults and 0.5–0.7 s of system time. The price is
/// that a process keeps up to 256 MiB of freed heap for reuse (its peak is unchanged).
/// Elsewhere (macOS, Windows, musl) this does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Allocations up to 32 MiB (glibc's maximum for this setting) come from the heap, and
        // the heap keeps up to 256 MiB of free space at its top.
        const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
        const TRIM_THRESHOLD_BYTES: i32 = 256 << 20;
        // SAFETY: mallopt only changes allocator parameters; it is called before any other
        // thread starts, and a rejected value leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
        }
    }
}

/// In the browser, where there is no folder to write to: hands `bytes` to the browser as a
/// download named like `path`'s file name (exports and sessions; see
/// [`crate::data::image_io::write_atomic`]).
#[cfg(target_arch = "wasm32")]
pub fn download(path: &std::path::Path, bytes: &[u8]) -> crate::Result<()> {
    use wasm_bindgen::JsCast;
    let fail = |what: &str| {
        crate::DiffError::file(path, format!("the browser refused the download ({what})"))
    };
    let name = path.file_name().map_or_else(
        || "difflab-download".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(|_| fail("blob"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| fail("url"))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| fail("no document"))?;
    let a: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|_| fail("link"))?
        .dyn_into()
        .map_err(|_| fail("link"))?;
    a.set_href(&url);
    a.set_download(&name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}
