//! Small helpers between CPU vectors and burn tensors.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{DiffError, Result};

/// Uploads `values` (row-major) as a rank-4 tensor.
pub fn tensor4(values: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Uploads `values` (row-major) as a rank-2 tensor.
pub fn tensor2(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// One coefficient per batch item, shaped [B, 1, 1, 1] so that it broadcasts over C, H, W.
pub fn per_item(values: &[f64], device: &Device) -> Tensor<4> {
    let v: Vec<f32> = values.iter().map(|x| *x as f32).collect();
    tensor4(v, [values.len(), 1, 1, 1], device)
}

/// Reads a tensor back to the CPU as f32, row-major.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t
        .try_into_data()
        .map_err(|e| DiffError::Backend(format!("{e:?}")))?;
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| DiffError::Backend(format!("{e:?}")))
}
