//! 2-D toy distributions for the playground: each a seeded point cloud, scaled to roughly unit
//! variance so the diffusion schedules fit it as they fit images in [−1, 1].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::diffusion::noise::gaussian;
use crate::error::{DiffError, Result};

/// The datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
                let t =
                    1.5 * std::f64::consts::PI * (1.0 + 2.0 * (f64::from(i) + 0.5) / f64::from(k));
                cx += t * t.cos() / 6.0;
                cy += t * t.sin() / 6.0;
            }
            (cx / f64::from(k), cy / f64::from(k))
        };
        let z = gaussian(seed, 7, 2 * n);
        let pts = (0..n)
            .map(|i| {
                let u: f64 = rng.random();
                let v: f64 = rng.random();
                let (zx, zy) = (f64::from(z[2 * i]), f64::from(z[2 * i + 1]));
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
                s += (f64::from(x[0] - y[0]).powi(2) + f64::from(x[1] - y[1]).powi(2)).sqrt();
            }
        }
        s / (p.len() * q.len()).max(1) as f64
    };
    2.0 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)
}

/// A square raster plot of [−range, range]² (white, faint axes): what the playground's PNG and
/// GIF exports and `difflab toy` draw into. y points up, as in the app's plots.
pub struct PlotCanvas {
    /// The picture so far.
    pub image: image::RgbImage,
    range: f32,
}

impl PlotCanvas {
    /// A blank `size`×`size` plot.
    pub fn new(size: u32, range: f32) -> Self {
        let size = size.max(2);
        let mut c = Self {
            image: image::RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255])),
            range,
        };
        c.line([-range, 0.0], [range, 0.0], [225, 225, 225]);
        c.line([0.0, -range], [0.0, range], [225, 225, 225]);
        c
    }

    /// A point's pixel (may lie outside the image).
    fn to_px(&self, p: [f32; 2]) -> [f32; 2] {
        let s = (self.image.width() - 1) as f32;
        [
            (p[0] + self.range) / (2.0 * self.range) * s,
            (self.range - p[1]) / (2.0 * self.range) * s,
        ]
    }

    fn put(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        let (w, h) = (
            i64::from(self.image.width()),
            i64::from(self.image.height()),
        );
        if (0..w).contains(&x) && (0..h).contains(&y) {
            self.image.put_pixel(x as u32, y as u32, image::Rgb(colour));
        }
    }

    /// Points as 2×2 dots.
    pub fn points(&mut self, points: &[[f32; 2]], colour: [u8; 3]) {
        for p in points {
            let [x, y] = self.to_px(*p);
            let (x, y) = (x.round() as i64, y.round() as i64);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                self.put(x + dx, y + dy, colour);
            }
        }
    }

    /// A straight segment, one pixel wide.
    pub fn line(&mut self, a: [f32; 2], b: [f32; 2], colour: [u8; 3]) {
        let (pa, pb) = (self.to_px(a), self.to_px(b));
        let n = (pb[0] - pa[0])
            .abs()
            .max((pb[1] - pa[1]).abs())
            .ceil()
            .min(1e5) as usize;
        for i in 0..=n {
            let f = if n == 0 { 0.0 } else { i as f32 / n as f32 };
            let x = pa[0] + f * (pb[0] - pa[0]);
            let y = pa[1] + f * (pb[1] - pa[1]);
            self.put(x.round() as i64, y.round() as i64, colour);
        }
    }

    /// Segments through consecutive points.
    pub fn polyline(&mut self, points: &[[f32; 2]], colour: [u8; 3]) {
        for w in points.windows(2) {
            self.line(w[0], w[1], colour);
        }
    }

    /// A segment from `from` to `to` with a small head at `to`.
    pub fn arrow(&mut self, from: [f32; 2], to: [f32; 2], colour: [u8; 3]) {
        self.line(from, to, colour);
        let d = [to[0] - from[0], to[1] - from[1]];
        let len = d[0].hypot(d[1]);
        if len < 1e-6 {
            return;
        }
        let head = (0.3 * len).min(0.06 * self.range);
        let (ux, uy) = (d[0] / len, d[1] / len);
        for side in [-1.0f32, 1.0] {
            // 30° either side of the shaft.
            let (c, s) = (0.866f32, 0.5 * side);
            let back = [-(ux * c - uy * s), -(ux * s + uy * c)];
            self.line(to, [to[0] + head * back[0], to[1] + head * back[1]], colour);
        }
    }

    /// A circle of radius `r` about the origin.
    pub fn circle(&mut self, r: f32, colour: [u8; 3]) {
        let pts: Vec<[f32; 2]> = (0..=120)
            .map(|i| {
                let a = i as f32 / 120.0 * std::f32::consts::TAU;
                [r * a.cos(), r * a.sin()]
            })
            .collect();
        self.polyline(&pts, colour);
    }
}

/// Draws point sets on a `size`×`size` image covering [−range, range]², each set in its colour
/// (later sets on top), with faint axes.
pub fn scatter(sets: &[(&[[f32; 2]], [u8; 3])], size: u32, range: f32) -> image::RgbImage {
    let mut c = PlotCanvas::new(size, range);
    for (points, colour) in sets {
        c.points(points, *colour);
    }
    c.image
}

/// Images side by side, separated by a grey gutter of `gap` pixels (all of the first's height).
pub fn side_by_side(images: &[image::RgbImage], gap: u32) -> image::RgbImage {
    let h = images
        .iter()
        .map(image::ImageBuffer::height)
        .max()
        .unwrap_or(1);
    let w = images.iter().map(image::ImageBuffer::width).sum::<u32>()
        + gap * images.len().saturating_sub(1) as u32;
    let mut out = image::RgbImage::from_pixel(w.max(1), h, image::Rgb([200, 200, 200]));
    let mut x = 0;
    for i in images {
        image::imageops::replace(&mut out, i, i64::from(x), 0);
        x += i.width() + gap;
    }
    out
}
