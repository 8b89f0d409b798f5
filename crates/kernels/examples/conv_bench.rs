//! Throughput of the raw conv kernels on `f32` slices (no burn tensors), for profiling:
//! `cargo run -p difflab-kernels --example conv_bench`. Prints GFLOP/s of the forward pass and
//! of forward + both gradients for the U-Net's 3×3 shapes at batch 64 (median of 5 runs); with
//! the argument `gemm`, of the gemm path (CPUs without AVX2), with `avx2`, of the direct kernels'
//! AVX2 build (CPUs without AVX-512).

use std::time::Instant;

use difflab_kernels::conv::{
    Addends, ConvGeometry, Needs, conv2d_backward, conv2d_forward, with_avx2_kernels,
    with_gemm_kernels,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `conv_bench gemm`: the stride-1 convs on gemm instead of the direct kernels;
    // `conv_bench avx2`: the direct kernels' AVX2 build on a CPU with AVX-512.
    match std::env::args().nth(1).as_deref() {
        Some("gemm") => {
            println!("(gemm)");
            with_gemm_kernels(bench);
        }
        Some("avx2") => {
            println!("(direct, AVX2)");
            with_avx2_kernels(bench);
        }
        _ => bench(),
    }
}

fn bench() {
    let shapes = [
        (32, 32, 28),
        (16, 16, 28),
        (32, 32, 14),
        (64, 64, 14),
        (64, 64, 7),
    ];
    for (ci, co, hw) in shapes {
        let g = ConvGeometry::new([64, ci, hw, hw], [co, ci, 3, 3], [1, 1], [(1, 1), (1, 1)])
            .expect("geometry");
        let x: Vec<f32> = (0..g.batch * g.in_len())
            .map(|i| ((i * 7919) % 113) as f32 / 113.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..co * g.k())
            .map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.5)
            .collect();
        let b = vec![0.1f32; co];
        let mut y = vec![0.0f32; g.batch * g.out_len()];
        let flops = g.forward_flops();
        let mut fwd = Vec::new();
        let mut all = Vec::new();
        for _ in 0..6 {
            let t = Instant::now();
            conv2d_forward(&x, &w, Addends::bias(Some(&b)), &g, &mut y);
            fwd.push(flops / t.elapsed().as_secs_f64() / 1e9);
            let t = Instant::now();
            conv2d_forward(&x, &w, Addends::bias(Some(&b)), &g, &mut y);
            let grads = conv2d_backward(
                &x,
                &w,
                &y,
                &g,
                Needs {
                    x: true,
                    weight: true,
                    bias: true,
                },
            );
            all.push(3.0 * flops / t.elapsed().as_secs_f64() / 1e9);
            std::hint::black_box(grads);
        }
        fwd.remove(0);
        all.remove(0);
        println!(
            "{ci:>3}→{co:<3} {hw:>2}×{hw:<2} fwd {:6.1} GFLOP/s   fwd+bwd {:6.1} GFLOP/s",
            median(fwd),
            median(all)
        );
    }
}
