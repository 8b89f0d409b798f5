//! Animated GIFs of trajectories and interpolations, written atomically.

use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::imageops::FilterType;
use image::{Delay, Frame, RgbImage, RgbaImage};

use super::image_io::write_atomic;
use crate::error::{DiffError, Result};

/// At most `max` of `items`, picked evenly, the first and the last always kept.
pub fn pick_evenly<T: Clone>(items: &[T], max: usize) -> Vec<T> {
    let n = items.len();
    let keep = max.min(n);
    match keep {
        0 => Vec::new(),
        1 => vec![items[0].clone()],
        _ => (0..keep)
            .map(|i| items[i * (n - 1) / (keep - 1)].clone())
            .collect(),
    }
}

/// Encodes `frames` (all the same size) as a looping GIF, each shown `delay_ms` and scaled up
/// `scale` times (nearest neighbour). `on_frame(i)` is called after frame i.
pub fn encode_gif(
    frames: &[RgbImage],
    delay_ms: u32,
    scale: u32,
    mut on_frame: impl FnMut(usize),
) -> Result<Vec<u8>> {
    let first = frames
        .first()
        .ok_or_else(|| DiffError::invalid("a GIF needs at least one frame"))?;
    if scale == 0 || scale > 16 {
        return Err(DiffError::invalid("the GIF scale must be between 1 and 16"));
    }
    if frames.iter().any(|f| f.dimensions() != first.dimensions()) {
        return Err(DiffError::invalid(
            "every GIF frame must have the same size",
        ));
    }
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)
            .map_err(|e| DiffError::invalid(format!("GIF: {e}")))?;
        for (i, f) in frames.iter().enumerate() {
            let rgba: RgbaImage = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            let rgba = if scale > 1 {
                image::imageops::resize(
                    &rgba,
                    f.width() * scale,
                    f.height() * scale,
                    FilterType::Nearest,
                )
            } else {
                rgba
            };
            let delay = Delay::from_numer_denom_ms(delay_ms.max(10), 1);
            enc.encode_frame(Frame::from_parts(rgba, 0, 0, delay))
                .map_err(|e| DiffError::invalid(format!("GIF: {e}")))?;
            on_frame(i);
        }
    }
    Ok(bytes)
}

/// [`encode_gif`] and an atomic write to `path`.
pub fn save_gif(
    frames: &[RgbImage],
    delay_ms: u32,
    scale: u32,
    path: &Path,
    on_frame: impl FnMut(usize),
) -> Result<()> {
    let bytes = encode_gif(frames, delay_ms, scale, on_frame)?;
    write_atomic(path, &bytes)
}
