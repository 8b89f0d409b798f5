//! The edit panel's persisted settings: the sketch pad's drawing and mask (part of a session
//! file, like every setting) and the edits' parameters.

use serde::{Deserialize, Serialize};

use super::sampler::{GuidanceSettings, LabelPick, MAX_GUIDANCE, SamplerChoice, SamplerSettings};
use crate::data::mnist::SIDE;

/// The pad's side in pixels (the MNIST net's 28).
pub const PAD_SIDE: usize = SIDE;
/// The pad's pixels.
pub const PAD_PIXELS: usize = PAD_SIDE * PAD_SIDE;

/// Which edit the panel shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EditMode {
    /// SDEdit: noise the drawing to t₀, denoise it.
    #[default]
    Sdedit,
    /// Inpainting (RePaint): the model fills the masked part.
    Inpaint,
    /// DDIM inversion: the drawing to its noise and back.
    Invert,
}

impl EditMode {
    /// Every mode, in the panel's order.
    pub const ALL: [EditMode; 3] = [EditMode::Sdedit, EditMode::Inpaint, EditMode::Invert];

    /// Its name in the panel.
    pub fn label(self) -> &'static str {
        match self {
            EditMode::Sdedit => "SDEdit",
            EditMode::Inpaint => "Inpainting",
            EditMode::Invert => "DDIM inversion",
        }
    }
}

/// What a drag on the pad does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PadTool {
    /// White ink.
    #[default]
    Pen,
    /// Back to black.
    Eraser,
    /// Paint the inpainting mask (where the model fills in).
    Mask,
    /// Take the mask away.
    Unmask,
}

impl PadTool {
    /// Every tool.
    pub const ALL: [PadTool; 4] = [
        PadTool::Pen,
        PadTool::Eraser,
        PadTool::Mask,
        PadTool::Unmask,
    ];

    /// Its name in the panel.
    pub fn label(self) -> &'static str {
        match self {
            PadTool::Pen => "Pen",
            PadTool::Eraser => "Eraser",
            PadTool::Mask => "Mask",
            PadTool::Unmask => "Unmask",
        }
    }
}

/// The edit panel's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EditSettings {
    /// The edit shown.
    pub mode: EditMode,
    /// The drawing, row by row: 0 is black (MNIST's background), 255 white ink.
    pub pad: Vec<u8>,
    /// The inpainting mask over the pad, row by row: 1 where the model fills in.
    pub mask: Vec<u8>,
    /// What a drag does.
    pub tool: PadTool,
    /// The brush's radius in pad pixels.
    pub brush: f32,
    /// "Start from MNIST digit k".
    pub digit: u8,
    /// SDEdit's t₀ (the paper's numbering, 1 to T − 1).
    pub t0: usize,
    /// SDEdit's and inpainting's sampler (DDPM or DDIM) and steps.
    pub sampler: SamplerSettings,
    /// The digit guided towards, and w.
    pub guidance: GuidanceSettings,
    /// Seed of every noise; result k uses seed + k.
    pub seed: u64,
    /// Results per edit (seeds seed … seed + n − 1).
    pub samples: usize,
    /// RePaint's U (passes per step).
    pub resample: usize,
    /// RePaint's jump length.
    pub jump: usize,
    /// DDIM inversion's steps (and its decoding's).
    pub invert_steps: usize,
    /// "Edit the noise": the two MNIST digits (by index) whose inverted noises are blended.
    pub noise_digits: (usize, usize),
}

impl Default for EditSettings {
    fn default() -> Self {
        let mut mask = vec![0; PAD_PIXELS];
        // The lower half: a digit's bottom for the model to finish.
        mask[PAD_PIXELS / 2..].fill(1);
        Self {
            mode: EditMode::Sdedit,
            pad: vec![0; PAD_PIXELS],
            mask,
            tool: PadTool::Pen,
            brush: 1.5,
            digit: 7,
            t0: 500,
            sampler: SamplerSettings {
                sampler: SamplerChoice::Ddim,
                steps: 50,
                eta: 0.0,
                ..SamplerSettings::default()
            },
            guidance: GuidanceSettings {
                label: LabelPick::Any,
                scale: 2.0,
            },
            seed: 0,
            samples: 4,
            resample: 1,
            jump: 1,
            invert_steps: 50,
            noise_digits: (0, 1),
        }
    }
}

impl EditSettings {
    /// Clamps what a stale or hand-edited file might have out of range; `t_max` is T.
    pub fn sanitise(&mut self, t_max: usize) {
        let d = Self::default();
        if self.pad.len() != PAD_PIXELS {
            self.pad = d.pad;
        }
        if self.mask.len() != PAD_PIXELS {
            self.mask = d.mask;
        }
        for m in &mut self.mask {
            *m = (*m).min(1);
        }
        self.brush = if self.brush.is_finite() {
            self.brush.clamp(0.5, 4.0)
        } else {
            d.brush
        };
        self.digit = self.digit.min(9);
        self.t0 = self.t0.clamp(1, t_max.saturating_sub(1).max(1));
        if !matches!(
            self.sampler.sampler,
            SamplerChoice::Ddim | SamplerChoice::DdpmFixedSmall
        ) {
            self.sampler.sampler = SamplerChoice::Ddim;
        }
        self.sampler.steps = self.sampler.steps.clamp(1, t_max);
        self.guidance.scale = if self.guidance.scale.is_finite() {
            self.guidance.scale.clamp(0.0, MAX_GUIDANCE)
        } else {
            d.guidance.scale
        };
        if !matches!(self.guidance.label, LabelPick::Digit(0..=9)) {
            self.guidance.label = LabelPick::Any;
        }
        self.samples = self.samples.clamp(1, 8);
        self.resample = self.resample.clamp(1, 20);
        self.jump = self.jump.clamp(1, self.sampler.steps);
        self.invert_steps = self.invert_steps.clamp(1, t_max);
        let n = 10_000;
        self.noise_digits = (
            self.noise_digits.0.min(n - 1),
            self.noise_digits.1.min(n - 1),
        );
    }

    /// The drawing as the models take it: 784 values in [−1, 1].
    pub fn input(&self) -> Vec<f32> {
        self.pad
            .iter()
            .map(|&p| f32::from(p) / 127.5 - 1.0)
            .collect()
    }

    /// The mask as RePaint takes it: 1 where the model fills in.
    pub fn mask_values(&self) -> Vec<f32> {
        self.mask.iter().map(|&m| f32::from(m)).collect()
    }

    /// Puts MNIST values in [−1, 1] on the pad.
    pub fn set_pad(&mut self, values: &[f32]) {
        self.pad = values
            .iter()
            .map(|v| ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8)
            .collect();
        self.pad.resize(PAD_PIXELS, 0);
    }

    /// The first MNIST digit of class `self.digit`, put on the pad.
    pub fn start_from_digit(&mut self, mnist: &crate::data::mnist::Mnist) {
        let k = self.digit;
        if let Some(i) = mnist.labels.iter().position(|&l| l == k) {
            self.set_pad(&mnist.image(i));
        }
    }

    /// Paints a disc of the brush's radius centred at (x, y) in pad pixels with the tool: ink
    /// fades at the rim (anti-aliased), the mask is all or nothing.
    pub fn paint(&mut self, x: f32, y: f32) {
        let r = self.brush;
        for row in 0..PAD_SIDE {
            for col in 0..PAD_SIDE {
                let (cx, cy) = (col as f32 + 0.5, row as f32 + 0.5);
                let dist = ((cx - x).powi(2) + (cy - y).powi(2)).sqrt();
                // Full inside r − 0.5, nothing beyond r + 0.5.
                let cover = (r + 0.5 - dist).clamp(0.0, 1.0);
                if cover <= 0.0 {
                    continue;
                }
                let i = row * PAD_SIDE + col;
                match self.tool {
                    PadTool::Pen => {
                        let v = (cover * 255.0).round() as u8;
                        self.pad[i] = self.pad[i].max(v);
                    }
                    PadTool::Eraser => {
                        let keep = 1.0 - cover;
                        self.pad[i] = (f32::from(self.pad[i]) * keep).round() as u8;
                    }
                    PadTool::Mask if cover >= 0.5 => self.mask[i] = 1,
                    PadTool::Unmask if cover >= 0.5 => self.mask[i] = 0,
                    _ => {}
                }
            }
        }
    }

    /// Paints along the segment from `a` to `b` (a drag between two frames), every half pixel.
    pub fn stroke(&mut self, a: (f32, f32), b: (f32, f32)) {
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let n = (len * 2.0).ceil().max(1.0) as usize;
        for k in 0..=n {
            let f = k as f32 / n as f32;
            self.paint(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
        }
    }
}

/// A grey image fitted into the pad: scaled so its longer side is 20 pixels and centred, as
/// MNIST's digits are, and inverted when it is dark ink on a light page (MNIST is white on
/// black). `grey` is row by row in [0, 1].
pub fn fit_to_pad(grey: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![-1.0f32; PAD_PIXELS];
    if width == 0 || height == 0 || grey.len() != width * height {
        return out;
    }
    let mean = grey.iter().sum::<f32>() / grey.len() as f32;
    let invert = mean > 0.5;
    let value = |x: usize, y: usize| {
        let v = grey[y * width + x];
        if invert { 1.0 - v } else { v }
    };
    // Already the pad's size: taken as it is.
    if width == PAD_SIDE && height == PAD_SIDE {
        for (i, o) in out.iter_mut().enumerate() {
            *o = value(i % PAD_SIDE, i / PAD_SIDE) * 2.0 - 1.0;
        }
        return out;
    }
    let box_side = 20.0;
    let scale = box_side / width.max(height) as f32;
    let (w, h) = (width as f32 * scale, height as f32 * scale);
    let (x0, y0) = ((PAD_SIDE as f32 - w) / 2.0, (PAD_SIDE as f32 - h) / 2.0);
    for row in 0..PAD_SIDE {
        for col in 0..PAD_SIDE {
            // The source pixels this pad pixel covers, averaged (a box filter).
            let (sx0, sx1) = ((col as f32 - x0) / scale, (col as f32 + 1.0 - x0) / scale);
            let (sy0, sy1) = ((row as f32 - y0) / scale, (row as f32 + 1.0 - y0) / scale);
            if sx1 <= 0.0 || sy1 <= 0.0 || sx0 >= width as f32 || sy0 >= height as f32 {
                continue;
            }
            let (xa, xb) = (sx0.max(0.0) as usize, (sx1.ceil() as usize).min(width));
            let (ya, yb) = (sy0.max(0.0) as usize, (sy1.ceil() as usize).min(height));
            let mut sum = 0.0;
            let mut n = 0.0;
            for y in ya..yb.max(ya + 1).min(height) {
                for x in xa..xb.max(xa + 1).min(width) {
                    sum += value(x, y);
                    n += 1.0;
                }
            }
            if n > 0.0 {
                out[row * PAD_SIDE + col] = (sum / n) * 2.0 - 1.0;
            }
        }
    }
    out
}
