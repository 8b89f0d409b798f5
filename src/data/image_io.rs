//! Reading images into [−1, 1] CHW arrays, and writing tensors back out as PNG.
//!
//! Every write goes to a temporary file next to the target and is renamed over it, so an
//! interrupted write never leaves a half-written file where the user's file was.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, RgbImage};

use crate::error::{DiffError, Result};

/// An image as f32 values in [−1, 1], channel-major (C, H, W).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageArray {
    /// C·H·W values.
    pub data: Vec<f32>,
    /// Channels (1 or 3).
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

impl ImageArray {
    /// [C, H, W].
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// From an RGB image, mapping 0..255 to −1..1.
    pub fn from_rgb(img: &RgbImage) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0.0f32; 3 * h * w];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                data[c * h * w + y as usize * w + x as usize] = f32::from(p.0[c]) / 127.5 - 1.0;
            }
        }
        Self {
            data,
            channels: 3,
            height: h,
            width: w,
        }
    }

    /// From a grayscale image, mapping 0..255 to −1..1.
    pub fn from_luma(img: &image::GrayImage) -> Self {
        Self {
            data: img
                .as_raw()
                .iter()
                .map(|p| f32::from(*p) / 127.5 - 1.0)
                .collect(),
            channels: 1,
            height: img.height() as usize,
            width: img.width() as usize,
        }
    }
}

/// How values map to 0..255 when written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRange {
    /// [−1, 1] → [0, 255], clamped (images, x_t, x̂0).
    Unit,
    /// Each image's own min..max → 0..255 (noise, ε̂, difference images).
    Normalise,
}

fn to_u8(v: f32, lo: f32, hi: f32) -> u8 {
    let x = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    round_to_level(x.clamp(0.0, 1.0) * 255.0)
}

/// `y` in [0, 255] rounded to the nearest level, halves up, the same on every system.
/// `f32::round` calls the C library's `roundf` on x86-64, and mingw-w64's gave 1 for
/// 0.49999997 (it adds 0.5 first, which rounds up to 1.0): the Windows build's PNGs then
/// differed from Linux's by a level where the samples were equal to the bit. Here the cast
/// truncates (one instruction) and `y − i` is exact.
fn round_to_level(y: f32) -> u8 {
    let i = y as u8;
    if y - f32::from(i) >= 0.5 {
        i.saturating_add(1)
    } else {
        i
    }
}

/// One CHW image (1 or 3 channels) as RGB8.
pub fn chw_to_rgb(data: &[f32], shape: [usize; 3], range: ValueRange) -> Result<RgbImage> {
    let [c, h, w] = shape;
    if data.len() != c * h * w || !(c == 1 || c == 3) || h == 0 || w == 0 {
        return Err(DiffError::invalid(format!(
            "cannot draw {} values as an image of shape {shape:?}",
            data.len()
        )));
    }
    let (lo, hi) = match range {
        ValueRange::Unit => (-1.0, 1.0),
        ValueRange::Normalise => data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            }),
    };
    let plane = h * w;
    Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let ch = |k: usize| to_u8(data[if c == 1 { i } else { k * plane + i }], lo, hi);
        image::Rgb([ch(0), ch(1), ch(2)])
    }))
}

/// A batch [B, C, H, W] (row-major values) as B RGB images.
pub fn batch_to_rgb(data: &[f32], shape: [usize; 4], range: ValueRange) -> Result<Vec<RgbImage>> {
    let [b, c, h, w] = shape;
    let n = c * h * w;
    if data.len() != b * n {
        return Err(DiffError::invalid("batch data does not match its shape"));
    }
    (0..b)
        .map(|i| chw_to_rgb(&data[i * n..(i + 1) * n], [c, h, w], range))
        .collect()
}

/// The most pixels a picture difflab writes may have (256 megapixels, 768 MB as RGB).
pub const MAX_PICTURE_PIXELS: u64 = 1 << 28;

/// The size [`grid`] gives `n` cells of `cell` pixels in `cols` columns, or an error naming
/// it when it would be more than a picture may be ([`MAX_IMAGE_SIDE`] a side,
/// [`MAX_PICTURE_PIXELS`] in all): checked before the work that fills it, not after.
pub fn grid_size(
    n: usize,
    cols: usize,
    cell: (usize, usize),
    pad: u32,
    scale: u32,
) -> Result<(u32, u32)> {
    let n = n.max(1) as u64;
    let cols = (cols as u64).clamp(1, n);
    let rows = n.div_ceil(cols);
    let scale = u64::from(scale.max(1));
    let pad = u64::from(pad);
    let side = |cells: u64, len: usize| {
        (len as u64)
            .checked_mul(scale)
            .and_then(|l| l.checked_mul(cells))
            .and_then(|l| l.checked_add((cells + 1) * pad))
            .unwrap_or(u64::MAX)
    };
    let (width, height) = (side(cols, cell.0), side(rows, cell.1));
    let max = u64::from(MAX_IMAGE_SIDE);
    if width > max || height > max || width.saturating_mul(height) > MAX_PICTURE_PIXELS {
        return Err(DiffError::invalid(format!(
            "the picture would be {width}×{height} pixels (at most {max} a side and \
             {} megapixels): ask for fewer or smaller pictures",
            MAX_PICTURE_PIXELS >> 20
        )));
    }
    Ok((width as u32, height as u32))
}

/// Tiles equally sized images into a grid with `cols` columns and `pad` pixels between them.
pub fn grid(images: &[RgbImage], cols: usize, pad: u32, scale: u32) -> RgbImage {
    let Some(first) = images.first() else {
        return RgbImage::new(1, 1);
    };
    let scale = scale.max(1);
    let (w, h) = (first.width() * scale, first.height() * scale);
    let cols = cols.clamp(1, images.len()) as u32;
    let rows = (images.len() as u32).div_ceil(cols);
    let mut out = RgbImage::from_pixel(
        cols * w + (cols + 1) * pad,
        rows * h + (rows + 1) * pad,
        image::Rgb([32, 32, 32]),
    );
    for (k, img) in images.iter().enumerate() {
        let img = if scale > 1 {
            image::imageops::resize(img, w, h, FilterType::Nearest)
        } else {
            img.clone()
        };
        let (col, row) = (k as u32 % cols, k as u32 / cols);
        image::imageops::replace(
            &mut out,
            &img,
            i64::from(pad + col * (w + pad)),
            i64::from(pad + row * (h + pad)),
        );
    }
    out
}

/// A sensible number of grid columns for `n` images (about square).
pub fn grid_cols(n: usize) -> usize {
    (n as f64).sqrt().ceil().max(1.0) as usize
}

/// The largest image accepted (each side) and the most its decoder may allocate: a damaged
/// header that claims a gigapixel image is refused instead of filling memory.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// See [`MAX_IMAGE_SIDE`].
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// Decodes PNG, JPEG or GIF bytes within [`MAX_IMAGE_SIDE`] and [`MAX_DECODE_BYTES`].
pub fn decode_limited(bytes: &[u8]) -> image::ImageResult<DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.decode()
}

/// Opens any PNG or JPEG (or other format the image crate knows) with a clear error.
pub fn open_image(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| DiffError::file(path, e))?;
    decode_limited(&bytes).map_err(|e| DiffError::file(path, format!("not a readable image ({e})")))
}

/// Loads an image in colour, downscaled (keeping its aspect) so neither side exceeds `max_side`.
pub fn load_rgb(path: &Path, max_side: u32) -> Result<ImageArray> {
    let img = open_image(path)?;
    let img = fit(img, max_side);
    Ok(ImageArray::from_rgb(&img.to_rgb8()))
}

/// Like [`load_rgb`], from encoded bytes (a bundled asset); `what` names it in errors.
pub fn decode_rgb(bytes: &[u8], what: &str, max_side: u32) -> Result<ImageArray> {
    let img = decode_limited(bytes)
        .map_err(|e| DiffError::invalid(format!("{what}: not a readable image ({e})")))?;
    Ok(ImageArray::from_rgb(&fit(img, max_side).to_rgb8()))
}

fn fit(img: DynamicImage, max_side: u32) -> DynamicImage {
    if img.width() > max_side || img.height() > max_side {
        img.resize(max_side, max_side, FilterType::Triangle)
    } else {
        img
    }
}

/// Loads every image in a folder, resized to `size`×`size` (1 or 3 channels). Files that are not
/// readable images are skipped and reported in the second value.
pub fn load_folder(
    dir: &Path,
    size: u32,
    channels: usize,
) -> Result<(Vec<ImageArray>, Vec<String>)> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DiffError::file(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for p in entries {
        match open_image(&p) {
            Ok(img) => {
                let img = img.resize_exact(size, size, FilterType::Triangle);
                images.push(if channels == 1 {
                    ImageArray::from_luma(&img.to_luma8())
                } else {
                    ImageArray::from_rgb(&img.to_rgb8())
                });
            }
            Err(e) => skipped.push(e.to_string()),
        }
    }
    if images.is_empty() {
        return Err(DiffError::file(dir, "contains no readable images"));
    }
    Ok((images, skipped))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // The page has no folders: the browser downloads the file instead.
    #[cfg(target_arch = "wasm32")]
    return crate::platform::download(path, bytes);
    #[cfg(not(target_arch = "wasm32"))]
    write_atomic_with(path, |f| std::io::Write::write_all(f, bytes))
}

/// Writes `path` through a temporary file in the same folder and a rename: `write` fills the
/// temporary file. On any failure (an unwritable folder, a full disk, a path that is a folder)
/// the error is one line naming the path, the previous file is untouched and no temporary file
/// is left behind. What `path` is stays what it was: a symbolic link is written through (its
/// target is replaced, the link kept), a replaced file keeps its permissions, and a path that
/// is not a plain file (`/dev/null`, a named pipe) is written into, not replaced.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let target = link_target(path)?;
    let path = target.as_path();
    let existing = std::fs::metadata(path).ok();
    if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
        return Err(DiffError::file(path, "is a folder, not a file"));
    }
    if existing.as_ref().is_some_and(|m| !m.is_file()) {
        // A device or a pipe: there is nothing to replace, and a rename would put a plain file
        // in its place.
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| write(&mut f))
            .map_err(|e| DiffError::file(path, format!("cannot write it ({e})")));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(DiffError::file(dir, "folder does not exist"));
    }
    let name = path
        .file_name()
        .ok_or_else(|| DiffError::file(path, "not a file name"))?
        .to_string_lossy();
    // The temporary name stays within the 255 bytes a file name may have.
    let short: String = name.chars().take(64).collect();
    let tmp = dir.join(format!(".{short}.tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        write(&mut f)?;
        if let Some(meta) = &existing {
            f.set_permissions(meta.permissions())?;
        }
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(DiffError::file(path, format!("cannot write it ({e})")));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DiffError::file(path, e)
    })
}

/// The file a path finally names when it is a symbolic link (followed through up to 32 links,
/// dangling ones included); the path itself otherwise. A loop of links is an error.
pub fn link_target(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..32 {
        let is_link = std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink());
        let Some(next) = is_link.then(|| std::fs::read_link(&current).ok()).flatten() else {
            return Ok(current);
        };
        current = match current.parent() {
            Some(dir) if next.is_relative() => dir.join(next),
            _ => next,
        };
    }
    Err(DiffError::file(path, "is a loop of symbolic links"))
}

/// Encodes and writes a PNG atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)
        .map_err(|e| DiffError::file(path, e))?;
    write_atomic(path, bytes.get_ref())
}

#[cfg(test)]
mod level_tests {
    use super::round_to_level;

    /// The level of every value is `f32::round`'s as glibc computes it (correctly), including
    /// just under a half, where mingw-w64's `roundf` went up.
    #[test]
    fn levels_round_halves_up_and_just_under_a_half_down() {
        let under_half = f32::from_bits(0.5f32.to_bits() - 1); // 0.49999997
        assert_eq!(round_to_level(under_half), 0);
        assert_eq!(round_to_level(0.5), 1);
        assert_eq!(round_to_level(0.0), 0);
        assert_eq!(round_to_level(254.5), 255);
        assert_eq!(round_to_level(255.0), 255);
        assert_eq!(round_to_level(f32::from_bits(254.5f32.to_bits() - 1)), 254);
        for k in 0..=255_000u32 {
            let y = k as f32 / 1000.0;
            assert_eq!(u32::from(round_to_level(y)), y.round() as u32, "{y}");
        }
    }
}
