//! One f32 tensor in a SafeTensors file: what `difflab sample --tensor` writes (the samples
//! before they are rounded to 8-bit pixels), so that two runs, two machines or two operating
//! systems can be compared to the last bit.

use crate::{DiffError, Result};

/// The SafeTensors bytes of one little-endian f32 tensor named `name`.
pub fn f32_safetensors(name: &str, shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(DiffError::Backend(format!(
            "a tensor of shape {shape:?} needs {expected} values, not {}",
            data.len()
        )));
    }
    let header = serde_json::json!({
        name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * data.len()]}
    })
    .to_string();
    // The header is padded with spaces to a multiple of 8 bytes (the format's alignment).
    let padded = header.len().div_ceil(8) * 8;
    let mut bytes = Vec::with_capacity(8 + padded + 4 * data.len());
    bytes.extend_from_slice(&(padded as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(8 + padded, b' ');
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    Ok(bytes)
}

/// Reads back the tensor `name` of [`f32_safetensors`]' bytes: its shape and values.
pub fn read_f32_safetensors(bytes: &[u8], name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let bad = |why: &str| DiffError::Backend(format!("not a difflab tensor file: {why}"));
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or_else(|| bad("too short"))?;
    let len = usize::try_from(len).map_err(|_| bad("header too long"))?;
    let header = bytes
        .get(8..8usize.saturating_add(len))
        .ok_or_else(|| bad("truncated header"))?;
    let header: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let entry = header.get(name).ok_or_else(|| bad("no such tensor"))?;
    if entry["dtype"] != "F32" {
        return Err(bad("not f32"));
    }
    let shape: Vec<usize> =
        serde_json::from_value(entry["shape"].clone()).map_err(|e| bad(&e.to_string()))?;
    let offsets: [usize; 2] =
        serde_json::from_value(entry["data_offsets"].clone()).map_err(|e| bad(&e.to_string()))?;
    let data = bytes
        .get(8 + len + offsets[0]..8 + len + offsets[1])
        .ok_or_else(|| bad("truncated data"))?;
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if values.len() != shape.iter().product::<usize>() {
        return Err(bad("shape and data differ"));
    }
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_round_trips_bit_for_bit() {
        let data: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin() - 1e-7).collect();
        let bytes = f32_safetensors("samples", &[2, 3, 2, 2], &data).unwrap();
        // The layout the format fixes: an 8-byte length, a padded JSON header, the values.
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(len % 8, 0);
        assert_eq!(bytes.len(), 8 + len + 4 * 24);
        let (shape, back) = read_f32_safetensors(&bytes, "samples").unwrap();
        assert_eq!(shape, [2, 3, 2, 2]);
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(f32_safetensors("x", &[5], &data).is_err());
        assert!(read_f32_safetensors(&bytes[..20], "samples").is_err());
        assert!(read_f32_safetensors(&bytes, "other").is_err());
    }
}
