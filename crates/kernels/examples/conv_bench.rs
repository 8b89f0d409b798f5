//! Throughput of the raw conv kernels on `f32` slices (no burn tensors), for profiling:
//! `cargo run -p difflab-kernels --example conv_bench`. Prints GFLOP/s of the forward pass and
//! of forward + both gradients for the U-Net's 3×3 shapes at batch 64 (median of 5 runs); with
//! the argument `gemm`, of the gemm path (CPUs without AVX2), with `avx2`, of the direct kernels'
//! AVX2 build (CPUs without AVX-512). A shape `CI,CO,HW,BATCH` (e.g. `64,64,7,256`) measures that
//! one conv instead of the list.

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
    // `conv_bench avx2`: the direct kernels' AVX2 build on a CPU with AVX-512;
    // `conv_bench 64,64,7,256`: one conv, C_in 64 → C_out 64 on 7×7 images, batch 256.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<[usize; 4]> = match args.iter().find(|a| a.contains(',')) {
        Some(a) => {
            let v: Vec<usize> = a
                .split(',')
                .map(|n| n.trim().parse().expect("a shape CI,CO,HW,BATCH"))
                .collect();
            assert_eq!(v.len(), 4, "a shape CI,CO,HW,BATCH");
            vec![[v[0], v[1], v[2], v[3]]]
        }
        None => vec![
            [32, 32, 28, 64],
            [16, 16, 28, 64],
            [32, 32, 14, 64],
            [64, 64, 14, 64],
            [64, 64, 7, 64],
        ],
    };
    if args.iter().any(|a| a == "gemm") {
        println!("(gemm)");
        with_gemm_kernels(|| bench(&shapes));
    } else if args.iter().any(|a| a == "avx2") {
        println!("(direct, AVX2)");
        with_avx2_kernels(|| bench(&shapes));
    } else {
        bench(&shapes);
    }
}

fn bench(shapes: &[[usize; 4]]) {
    for &[ci, co, hw, batch] in shapes {
        let g = ConvGeometry::new(
            [batch, ci, hw, hw],
            [co, ci, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
        )
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
            "{ci:>3}→{co:<3} {hw:>2}×{hw:<2} batch {batch:<3} fwd {:6.1} GFLOP/s   fwd+bwd {:6.1} GFLOP/s",
            median(fwd),
            median(all)
        );
    }
}
