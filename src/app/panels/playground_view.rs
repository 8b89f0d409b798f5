//! What the playground draws from its state: the forward cloud, the field's arrows, the
//! reverse paths, and the PNG and GIF exports.

use super::playground::{
    CONTOUR_RGB, DDIM_RGB, DDPM_RGB, EXACT_RGB, EXPORT_PX, Frames, LEARNED_RGB, PLOT_RANGE,
    PlaygroundPanel, ToyField,
};
use crate::app::settings::ToyModel;
use crate::app::settings::{FieldKind, ToySettings, ToyView};
use crate::data::toy2d::{PlotCanvas, side_by_side};
use crate::diffusion::NoiseSchedule;
use crate::diffusion::noise::gaussian;
use image::RgbImage;

impl PlaygroundPanel {
    /// The forward cloud q(x_t | x_0) of the training points at `paper_t` (1-based; 0 is the
    /// data), with noise fixed by the seed so scrubbing is smooth.
    pub fn forward_cloud(
        &self,
        seed: u64,
        schedule: Option<&NoiseSchedule>,
        paper_t: usize,
    ) -> Vec<[f32; 2]> {
        match schedule {
            Some(s) if paper_t > 0 => {
                let i = (paper_t - 1).min(s.num_timesteps() - 1);
                let (a, b) = (
                    s.sqrt_alphas_cumprod[i] as f32,
                    s.sqrt_one_minus_alphas_cumprod[i] as f32,
                );
                // x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (Ho et al. eq. 4).
                let z = gaussian(seed ^ 0xf0, 0, 2 * self.data.len());
                self.data
                    .iter()
                    .enumerate()
                    .map(|(k, q)| [a * q[0] + b * z[2 * k], a * q[1] + b * z[2 * k + 1]])
                    .collect()
            }
            _ => self.data.to_vec(),
        }
    }

    /// The arrows' tips for display: −ε̂ at a fixed scale, or the score scaled to fit a cell.
    pub(in crate::app) fn arrow_tips(
        &self,
        f: &ToyField,
        kind: FieldKind,
    ) -> Vec<([f32; 2], [f32; 2])> {
        let scale = match kind {
            FieldKind::Eps => 0.12,
            FieldKind::Score => {
                // −ε̂/√(1−ᾱ) is −ε̂ times a constant at one t: scale the largest to 0.9 cells.
                let longest = self
                    .fields
                    .iter()
                    .flat_map(|g| g.arrows.iter())
                    .map(|(_, e)| e[0].hypot(e[1]))
                    .fold(1e-6f32, f32::max);
                0.9 * 0.3 / longest
            }
        };
        f.arrows
            .iter()
            .map(|(q, e)| (*q, [q[0] - scale * e[0], q[1] - scale * e[1]]))
            .collect()
    }

    /// One sampler's plot at `frame` as an image: the data, its cloud and its paths.
    pub(in crate::app) fn reverse_image(
        &self,
        frames: &Frames,
        frame: usize,
        paths: usize,
        rgb: [u8; 3],
    ) -> RgbImage {
        let mut c = PlotCanvas::new(EXPORT_PX, PLOT_RANGE);
        c.circle(1.0, CONTOUR_RGB);
        c.circle(2.0, CONTOUR_RGB);
        c.points(&self.data, [215, 215, 215]);
        let f = frame.min(frames.len() - 1);
        c.points(&frames[f], rgb);
        for k in 0..paths.min(frames[0].len()) {
            let path: Vec<[f32; 2]> = frames[..=f].iter().map(|fr| fr[k]).collect();
            c.polyline(&path, [40, 40, 40]);
        }
        c.image
    }

    /// What the current view shows, as a PNG-ready image (Reverse: DDPM left, DDIM right).
    /// `None` when there is nothing to show yet.
    pub fn export_image(
        &self,
        s: &ToySettings,
        schedule: Option<&NoiseSchedule>,
        paper_t: usize,
    ) -> Option<RgbImage> {
        match s.view {
            ToyView::Forward => {
                let mut c = PlotCanvas::new(EXPORT_PX, PLOT_RANGE);
                c.circle(1.0, CONTOUR_RGB);
                c.circle(2.0, CONTOUR_RGB);
                c.points(&self.forward_cloud(s.seed, schedule, paper_t), DDIM_RGB);
                (!self.data.is_empty()).then_some(c.image)
            }
            ToyView::Reverse => self.reverse_pair(self.frame, s.paths),
            // The three models' 20-step paths, side by side.
            ToyView::Flow => {
                let r = self.flow.result.as_ref()?;
                let images: Vec<RgbImage> = r
                    .paths
                    .iter()
                    .zip([DDIM_RGB, DDPM_RGB, LEARNED_RGB])
                    .filter(|(frames, _)| !frames.is_empty())
                    .map(|(frames, rgb)| {
                        self.reverse_image(frames, frames.len() - 1, frames[0].len(), rgb)
                    })
                    .collect();
                (!images.is_empty()).then(|| side_by_side(&images, 8))
            }
            ToyView::Field => {
                if self.fields.is_empty() {
                    return None;
                }
                let mut c = PlotCanvas::new(EXPORT_PX, PLOT_RANGE);
                c.points(&self.data, [200, 200, 200]);
                for f in &self.fields {
                    let rgb = match f.model {
                        ToyModel::Exact if self.fields.len() > 1 => EXACT_RGB,
                        _ => LEARNED_RGB,
                    };
                    for (from, to) in self.arrow_tips(f, s.field_kind) {
                        c.arrow(from, to, rgb);
                    }
                }
                Some(c.image)
            }
        }
    }

    /// DDPM (left) and DDIM (right) at `frame`.
    pub(in crate::app) fn reverse_pair(&self, frame: usize, paths: usize) -> Option<RgbImage> {
        let (_, a, b) = self.trajectory.as_ref()?;
        Some(side_by_side(
            &[
                self.reverse_image(a, frame, paths, DDPM_RGB),
                self.reverse_image(b, frame, paths, DDIM_RGB),
            ],
            8,
        ))
    }

    /// The sampled trajectory as GIF frames (DDPM left, DDIM right), at most `max` of them
    /// picked evenly, the last being x_0.
    pub fn gif_frames(&self, paths: usize, max: usize) -> Vec<RgbImage> {
        let Some((ts, ..)) = &self.trajectory else {
            return Vec::new();
        };
        let picked = crate::data::gif::pick_evenly(&(0..ts.len()).collect::<Vec<_>>(), max);
        picked
            .into_iter()
            .filter_map(|f| self.reverse_pair(f, paths))
            .collect()
    }
}
