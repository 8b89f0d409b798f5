//! Workarounds for burn 0.22.1 bugs, checked against flex on wgpu (lavapipe in CI).

use burn::tensor::{Tensor, TensorData};
use difflab::tensor_util::{sum_rows, to_vec};

/// burn's `sum_dim(0)` on wgpu stops at 65 532 rows; `sum_rows` must count every row on both
/// backends, including row counts that are not a multiple of its block.
#[test]
fn sum_rows_counts_every_row_on_every_backend() {
    for (name, device) in crate::common::devices() {
        for rows in [1usize, 1000, 1024, 65_535, 130_560, 300_001] {
            let x: Tensor<2> = Tensor::ones([rows, 3], &device);
            let s = to_vec(sum_rows(x)).expect("sum");
            assert_eq!(s, vec![rows as f32; 3], "{name}, {rows} rows");
        }
        // Uploaded, not made with `arange`: on lavapipe, burn's Int `arange` is wrong past
        // element 65 535 too.
        let values: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let ramp: Tensor<2> = Tensor::from_data(TensorData::new(values, [100_000, 1]), &device);
        let s = to_vec(sum_rows(ramp)).expect("sum");
        // Σ 0..99 999 = 4 999 950 000, within f32's rounding of the partial sums.
        assert!(
            (f64::from(s[0]) - 4_999_950_000.0).abs() / 4_999_950_000.0 < 2e-5,
            "{name}: {}",
            s[0]
        );
    }
}
