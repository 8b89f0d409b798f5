//! `difflab eval`'s judge: the classifier is accurate, real digits pass, noise fails, and the
//! Fréchet distance has its closed form.

use difflab::data::mnist::Mnist;
use difflab::device::ComputeDevice;
use difflab::eval::{HELD_OUT, frechet_distance, judge, mean_by_class, train_judge};

#[test]
fn frechet_distance_of_shifted_sets_is_the_squared_shift() {
    // Same covariance, means c apart: the distance is |c|² exactly.
    let a: Vec<Vec<f32>> = (0..200)
        .map(|i| {
            let t = i as f32 * 0.37;
            vec![t.sin(), (2.0 * t).cos(), (0.5 * t).sin() * 2.0]
        })
        .collect();
    let c = [0.5f32, -1.0, 2.0];
    let b: Vec<Vec<f32>> = a
        .iter()
        .map(|r| r.iter().zip(c).map(|(x, d)| x + d).collect())
        .collect();
    let d = frechet_distance(&a, &b);
    assert!((d - 5.25).abs() < 1e-3, "{d}");
    assert!(frechet_distance(&a, &a).abs() < 1e-3);
}

#[test]
fn mean_by_class_averages_each_class_read() {
    let m = mean_by_class(&[(3, 0.5), (3, 1.0), (0, 0.25), (12, 0.9)]);
    assert_eq!(m[0], Some(0.25));
    assert_eq!(m[3], Some(0.75));
    assert!(
        m.iter()
            .enumerate()
            .all(|(k, v)| v.is_some() == (k == 0 || k == 3))
    );
}

#[test]
fn the_judge_passes_real_digits_and_fails_noise() {
    let device = ComputeDevice::flex().device;
    let mnist = Mnist::embedded().unwrap();
    let j = train_judge(&mnist, 2, 0, &device).unwrap();
    assert!(j.accuracy > 0.9, "accuracy {}", j.accuracy);
    // 500 real training digits judged as if they were samples.
    let real: Vec<f32> = (0..500).flat_map(|i| mnist.image(i)).collect();
    let r = judge(&j, &real, &device).unwrap();
    assert_eq!(r.n, 500);
    assert!(r.mean_confidence > 0.85, "{r:?}");
    assert!(r.histogram.iter().all(|h| *h >= 0.05), "{r:?}");
    assert!(r.entropy_bits > 3.2, "{r:?}");
    assert!(r.frechet < 3.0 * r.frechet_real, "{r:?}");
    // Per-sample readings: what the figures are made of, and the least sure first.
    assert_eq!(r.readings.len(), 500);
    let mean = r.readings.iter().map(|&(_, p)| f64::from(p)).sum::<f64>() / 500.0;
    assert!((mean - r.mean_confidence).abs() < 1e-6, "{mean} {r:?}");
    let read_right = (0..500)
        .filter(|&i| r.readings[i].0 == mnist.labels[i] as usize)
        .count();
    assert!(read_right >= 450, "{read_right} of 500 read as labelled");
    // Per class: weighted by the histogram, the means give the overall mean back.
    let by_class = r.confidence_by_class();
    let weighted: f64 = (0..10)
        .map(|k| r.histogram[k] * by_class[k].expect("every digit is read"))
        .sum();
    assert!((weighted - r.mean_confidence).abs() < 1e-6, "{by_class:?}");
    assert!(
        r.real_by_class.iter().all(|c| c.is_some_and(|c| c > 0.8)),
        "{r:?}"
    );
    let worst = r.least_confident(20);
    assert_eq!(worst.len(), 20);
    assert!(
        worst
            .windows(2)
            .all(|w| r.readings[w[0]].1 <= r.readings[w[1]].1)
    );
    let cut = r.readings[worst[19]].1;
    assert!(
        (0..500)
            .filter(|i| !worst.contains(i))
            .all(|i| r.readings[i].1 >= cut)
    );
    assert!(
        cut < 0.99,
        "the 20 least sure of 500 are not all sure: {cut}"
    );
    // Gaussian noise clipped to [−1, 1]: far from the digits.
    let noise: Vec<f32> = difflab::diffusion::noise::gaussian(9, 0, 500 * 784)
        .into_iter()
        .map(|v| v.clamp(-1.0, 1.0))
        .collect();
    let n = judge(&j, &noise, &device).unwrap();
    assert!(n.frechet > 10.0 * r.frechet, "noise {n:?} real {r:?}");
    assert_eq!(j.held_out.len(), HELD_OUT * 784);
}
