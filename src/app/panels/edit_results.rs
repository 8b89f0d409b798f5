//! What the edit panel shows of an edit's results: pictures uploaded once, SDEdit's rows, an
//! inpainting's frames, an inversion.

use std::sync::Arc;

use egui::Ui;
use image::RgbImage;

use super::widgets::{framed_image_ui, picture};
use crate::app::shown::{Shown, TextureSink};

/// Images the panel shows, uploaded once.
#[derive(Default)]
pub struct Pictures {
    /// The images.
    pub images: Vec<Arc<RgbImage>>,
    pub(in crate::app) shown: Vec<Shown>,
    pub(in crate::app) uploaded: bool,
}

impl Pictures {
    pub(in crate::app) fn new(images: Vec<Arc<RgbImage>>) -> Self {
        Self {
            images,
            shown: Vec::new(),
            uploaded: false,
        }
    }

    pub(in crate::app) fn sync(&mut self, name: &str, sink: &mut dyn TextureSink) {
        if self.uploaded {
            return;
        }
        self.uploaded = true;
        for s in &mut self.shown {
            s.free(sink);
        }
        self.shown = self
            .images
            .iter()
            .map(|img| {
                let mut s = Shown::default();
                s.replace(picture(img), name, sink);
                s
            })
            .collect();
    }

    pub(in crate::app) fn row_ui(&self, ui: &mut Ui, side: f32) -> Vec<egui::Response> {
        self.shown
            .iter()
            .map(|s| framed_image_ui(ui, s, side, false))
            .collect()
    }
}

/// SDEdit from one t₀.
pub struct SdeditRow {
    /// The t₀ asked for.
    pub t0: usize,
    /// The grid timestep it started from.
    pub start_t: Option<usize>,
    /// x_{t_s} (the first seed's).
    pub start: Pictures,
    /// The results.
    pub results: Pictures,
    /// Their values, [samples, 784].
    pub values: Vec<f32>,
}

/// An inpainting's frames.
pub struct Inpainting {
    /// Each frame's label.
    pub labels: Vec<String>,
    /// Each frame's images.
    pub frames: Vec<Vec<Arc<RgbImage>>>,
    /// The result's values, [samples, 784].
    pub values: Vec<f32>,
    /// The mask it was made with (outlined on every frame).
    pub mask: Vec<u8>,
    pub(in crate::app) shown: Pictures,
    pub(in crate::app) shown_frame: Option<usize>,
}

/// A DDIM inversion.
pub struct Inversion {
    /// Its steps.
    pub steps: usize,
    /// x_T's values.
    pub noise: Vec<f32>,
    /// x_T and the reconstruction.
    pub pictures: Pictures,
    /// The reconstruction error (RMSE, pixels in [−1, 1]).
    pub rmse: f64,
}
