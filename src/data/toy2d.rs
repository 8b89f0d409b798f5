//! 2-D toy distributions for the playground: each a seeded point cloud, scaled to roughly unit
//! variance so the diffusion schedules fit it as they fit images in [−1, 1].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::diffusion::noise::gaussian;
use crate::error::{DiffError, Result};

/// The datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Toy2d {
    /// The swiss roll of Sohl-Dickstein et al. 2015 (2-D: a spiral).
    SwissRoll,
    /// Two interleaved half circles.
    TwoMoons,
    /// Eight Gaussians on a circle.
    EightGaussians,
    /// A 4×4 checkerboard of uniform squares.
    Checkerboard,
    /// Two concentric circles.
    Circles,
}

impl Toy2d {
    /// Every dataset, in display order.
    pub const ALL: [Toy2d; 5] = [
        Toy2d::SwissRoll,
        Toy2d::TwoMoons,
        Toy2d::EightGaussians,
        Toy2d::Checkerboard,
        Toy2d::Circles,
    ];

    /// The display name.
    pub fn name(self) -> &'static str {
        match self {
            Toy2d::SwissRoll => "swiss roll",
            Toy2d::TwoMoons => "two moons",
            Toy2d::EightGaussians => "8 Gaussians",
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::Circles => "circles",
        }
    }

    /// `n` points from `seed`, as x, y pairs.
    pub fn sample(self, n: usize, seed: u64) -> Result<Vec<[f32; 2]>> {
        if n == 0 || n > 1_000_000 {
            return Err(DiffError::invalid(
                "the point count must be between 1 and 1,000,000",
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // The spiral's own centre of mass, removed so the roll sits around the origin.
        let roll_centre = {
            let k = 4096;
            let (mut cx, mut cy) = (0.0, 0.0);
            for i in 0..k {
                let t = 1.5 * std::f64::consts::PI * (1.0 + 2.0 * (i as f64 + 0.5) / k as f64);
                cx += t * t.cos() / 6.0;
                cy += t * t.sin() / 6.0;
            }
            (cx / k as f64, cy / k as f64)
        };
        let z = gaussian(seed, 7, 2 * n);
        let pts = (0..n)
            .map(|i| {
                let u: f64 = rng.random();
                let v: f64 = rng.random();
                let (zx, zy) = (z[2 * i] as f64, z[2 * i + 1] as f64);
                let (x, y) = match self {
                    Toy2d::SwissRoll => {
                        let t = 1.5 * std::f64::consts::PI * (1.0 + 2.0 * u);
                        (
                            t * t.cos() / 6.0 - roll_centre.0 + 0.05 * zx,
                            t * t.sin() / 6.0 - roll_centre.1 + 0.05 * zy,
                        )
                    }
                    Toy2d::TwoMoons => {
                        let a = std::f64::consts::PI * u;
                        let (x, y) = if v < 0.5 {
                            (a.cos(), a.sin())
                        } else {
                            (1.0 - a.cos(), 0.5 - a.sin())
                        };
                        ((x - 0.5) * 1.2 + 0.05 * zx, (y - 0.25) * 1.2 + 0.05 * zy)
                    }
                    Toy2d::EightGaussians => {
                        let k = (v * 8.0).floor().min(7.0);
                        let a = k * std::f64::consts::FRAC_PI_4;
                        (1.4 * a.cos() + 0.1 * zx, 1.4 * a.sin() + 0.1 * zy)
                    }
                    Toy2d::Checkerboard => {
                        // Pick a black square of a 4×4 board on [−2, 2]², then a point in it.
                        let cell = (v * 8.0).floor().min(7.0) as i64;
                        let (row, col) = (cell / 2, 2 * (cell % 2) + (cell / 2) % 2);
                        let w: f64 = rng.random();
                        ((col as f64 + u) - 2.0, (row as f64 + w) - 2.0)
                    }
                    Toy2d::Circles => {
                        let a = std::f64::consts::TAU * u;
                        let r = if v < 0.5 { 0.6 } else { 1.5 };
                        (r * a.cos() + 0.04 * zx, r * a.sin() + 0.04 * zy)
                    }
                };
                [x as f32, y as f32]
            })
            .collect();
        Ok(pts)
    }
}

/// Points as a flat [x0, y0, x1, y1, …] vector.
pub fn flatten(points: &[[f32; 2]]) -> Vec<f32> {
    points.iter().flat_map(|p| [p[0], p[1]]).collect()
}

/// The energy distance between two point sets (Székely & Rizzo):
/// E = 2·mean‖a−b‖ − mean‖a−a'‖ − mean‖b−b'‖, zero iff the distributions agree. Uses at most
/// `max` points of each set.
pub fn energy_distance(a: &[[f32; 2]], b: &[[f32; 2]], max: usize) -> f64 {
    let a = &a[..a.len().min(max)];
    let b = &b[..b.len().min(max)];
    let mean_dist = |p: &[[f32; 2]], q: &[[f32; 2]]| -> f64 {
        let mut s = 0.0;
        for x in p {
            for y in q {
                s += (((x[0] - y[0]) as f64).powi(2) + ((x[1] - y[1]) as f64).powi(2)).sqrt();
            }
        }
        s / (p.len() * q.len()).max(1) as f64
    };
    2.0 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)
}

/// Draws point sets on a `size`×`size` image covering [−range, range]², each set in its colour
/// (later sets on top), with faint axes.
pub fn scatter(sets: &[(&[[f32; 2]], [u8; 3])], size: u32, range: f32) -> image::RgbImage {
    let mut img = image::RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255]));
    let to_px = |v: f32| ((v + range) / (2.0 * range) * (size - 1) as f32).round() as i64;
    let mid = to_px(0.0);
    for i in 0..size {
        if (0..size as i64).contains(&mid) {
            img.put_pixel(i, mid as u32, image::Rgb([225, 225, 225]));
            img.put_pixel(mid as u32, i, image::Rgb([225, 225, 225]));
        }
    }
    for (points, colour) in sets {
        for p in *points {
            let (x, y) = (to_px(p[0]), to_px(-p[1]));
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (px, py) = (x + dx, y + dy);
                if (0..size as i64).contains(&px) && (0..size as i64).contains(&py) {
                    img.put_pixel(px as u32, py as u32, image::Rgb(*colour));
                }
            }
        }
    }
    img
}
