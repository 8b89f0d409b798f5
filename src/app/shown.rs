//! An image on screen: an egui texture made from CPU pixels, or a wgpu texture the worker wrote
//! on the GPU and the app registered with egui's renderer.

use egui::{ColorImage, Response, RichText, TextureHandle, TextureId, Ui, Vec2};

use super::jobs::worker::Picture;
use super::render::{self, GpuTexture, RenderState};

/// Where textures go: egui's texture manager, or the wgpu renderer.
pub trait TextureSink {
    /// Uploads CPU pixels.
    fn cpu(&mut self, name: &str, image: ColorImage) -> TextureHandle;
    /// Registers a native texture; `None` without a wgpu renderer.
    fn native(&mut self, texture: &GpuTexture) -> Option<TextureId>;
    /// Frees a registered native texture.
    fn free_native(&mut self, id: TextureId);
}

/// The sink of a running app.
pub struct AppSink<'a> {
    /// egui's context.
    pub ctx: &'a egui::Context,
    /// eframe's wgpu state, on the GPU path.
    pub render: Option<&'a RenderState>,
}

impl TextureSink for AppSink<'_> {
    fn cpu(&mut self, name: &str, image: ColorImage) -> TextureHandle {
        self.ctx
            .load_texture(name, image, egui::TextureOptions::NEAREST)
    }

    fn native(&mut self, texture: &GpuTexture) -> Option<TextureId> {
        Some(render::register(self.render?, texture))
    }

    fn free_native(&mut self, id: TextureId) {
        if let Some(rs) = self.render {
            render::free(rs, id);
        }
    }
}

/// A picture on screen.
#[derive(Default)]
pub struct Shown {
    handle: Option<TextureHandle>,
    native: Option<(TextureId, GpuTexture)>,
    /// Width and height in pixels.
    pub size: [usize; 2],
}

impl Shown {
    /// Replaces the picture, freeing the old texture.
    pub fn replace(&mut self, picture: Picture, name: &str, sink: &mut dyn TextureSink) {
        match picture {
            Picture::Cpu(image) => {
                self.size = image.size;
                match &mut self.handle {
                    Some(h) if self.native.is_none() => h.set(image, egui::TextureOptions::NEAREST),
                    _ => {
                        self.free(sink);
                        self.handle = Some(sink.cpu(name, image));
                    }
                }
            }
            Picture::Gpu(texture) => {
                self.free(sink);
                self.size = render::texture_size(&texture);
                if let Some(id) = sink.native(&texture) {
                    self.native = Some((id, texture));
                }
            }
        }
    }

    /// Frees the texture.
    pub fn free(&mut self, sink: &mut dyn TextureSink) {
        self.handle = None;
        if let Some((id, texture)) = self.native.take() {
            sink.free_native(id);
            render::destroy(&texture);
        }
    }

    /// Whether something is shown.
    pub fn is_set(&self) -> bool {
        self.handle.is_some() || self.native.is_some()
    }

    /// Whether it is a texture written on the GPU.
    pub fn is_gpu(&self) -> bool {
        self.native.is_some()
    }

    /// The CPU pixels' texture (CPU path only; tests read it).
    pub fn texture_id(&self) -> Option<TextureId> {
        self.native
            .as_ref()
            .map(|(id, _)| *id)
            .or_else(|| self.handle.as_ref().map(egui::TextureHandle::id))
    }

    /// Draws the picture fitted into a `side`×`side` box.
    pub fn image_ui(&self, ui: &mut Ui, side: f32) -> Response {
        self.image_in_ui(ui, Vec2::splat(side))
    }

    /// Draws the picture as large as fits in a `max` box (a placeholder square of the box's
    /// width while there is none).
    pub fn image_in_ui(&self, ui: &mut Ui, max: Vec2) -> Response {
        let Some(id) = self.texture_id() else {
            let side = max.x.min(max.y);
            let (rect, r) = ui.allocate_exact_size(Vec2::splat(side), egui::Sense::click());
            ui.painter()
                .rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
            return r;
        };
        let size = fit(self.size, max);
        ui.add(
            egui::Image::from_texture(egui::load::SizedTexture::new(id, size))
                .sense(egui::Sense::click()),
        )
    }

    /// A title above the picture, with a tooltip.
    pub fn labelled_ui(&self, ui: &mut Ui, title: &str, tooltip: &str, side: f32) {
        ui.vertical(|ui| {
            ui.label(RichText::new(title).strong())
                .on_hover_text(tooltip);
            self.image_ui(ui, side).on_hover_text(tooltip);
        });
    }
}

/// The on-screen size of a `[w, h]` picture scaled to fill a `max` box, aspect kept.
fn fit([w, h]: [usize; 2], max: Vec2) -> Vec2 {
    let (w, h) = (w.max(1) as f32, h.max(1) as f32);
    let scale = (max.x / w).min(max.y / h);
    Vec2::new(w * scale, h * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_fills_its_box_with_its_aspect_kept() {
        // A square grid in a square box fills it.
        assert_eq!(fit([59, 59], Vec2::splat(180.0)), Vec2::splat(180.0));
        // A tall grid (one row per digit, two columns) in a box three times as tall as wide: the
        // height limits it, and it is 3× wider than in a square box.
        let tall = fit([59, 289], Vec2::new(180.0, 540.0));
        assert!((tall.y - 540.0).abs() < 1e-3);
        assert!((tall.x - 59.0 * 540.0 / 289.0).abs() < 1e-3);
        let square_box = fit([59, 289], Vec2::splat(180.0));
        assert!((tall.x / square_box.x - 3.0).abs() < 1e-3);
        // A wide picture is limited by the width.
        assert_eq!(
            fit([200, 100], Vec2::new(100.0, 300.0)),
            Vec2::new(100.0, 50.0)
        );
    }
}
