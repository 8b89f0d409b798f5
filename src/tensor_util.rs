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
    f32s(t.try_into_data())
}

/// Reads a tensor back to the CPU as f32, row-major, without blocking: the only way a GPU
/// tensor reads back in the browser (WebGPU maps its buffers asynchronously, and burn's
/// synchronous read panics there). The jobs read with this; on flex it is ready at once.
pub async fn read_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    // burn's read future is about 18 KB: boxed, so the jobs' futures that await it stay small.
    f32s(Box::pin(t.into_data_async()).await)
}

/// A read's values as f32, or why the read failed.
fn f32s<E: std::fmt::Debug>(data: std::result::Result<TensorData, E>) -> Result<Vec<f32>> {
    data.map_err(|e| DiffError::Backend(format!("{e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| DiffError::Backend(format!("{e:?}")))
}

/// Whether tensors on `device` can be read back synchronously ([`to_vec`]): everywhere but a
/// GPU device in the browser, which only [`read_vec`] reads.
pub fn reads_synchronously(device: &Device) -> bool {
    !cfg!(target_arch = "wasm32") || *device == Device::flex()
}

/// Column sums of a [rows, cols] tensor, as [1, cols].
///
/// burn 0.22.1's `sum_dim(0)` on wgpu stops counting at 65 532 rows (seen on lavapipe: 130 560
/// ones sum to 65 532), so rows are summed in blocks of [`SUM_BLOCK`] and then the blocks.
pub fn sum_rows(x: Tensor<2>) -> Tensor<2> {
    let [rows, cols] = x.dims();
    if rows <= SUM_BLOCK {
        return x.sum_dim(0);
    }
    let blocks = rows.div_ceil(SUM_BLOCK);
    let padded = if blocks * SUM_BLOCK > rows {
        let pad = Tensor::<2>::zeros([blocks * SUM_BLOCK - rows, cols], &x.device());
        Tensor::cat(vec![x, pad], 0)
    } else {
        x
    };
    let partial: Tensor<2> = padded
        .reshape([blocks, SUM_BLOCK, cols])
        .sum_dim(1)
        .reshape([blocks, cols]);
    sum_rows(partial)
}

/// Rows per block in [`sum_rows`].
pub const SUM_BLOCK: usize = 1024;
