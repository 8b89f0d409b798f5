//! The renderer's GPU, where the app shares it (an edge, as `web.rs` is): on the desktop eframe
//! draws through wgpu and burn computes on the same device, so a tensor becomes a texture with
//! no copy through the CPU (`crate::gpu`). The browser build draws through egui_glow and
//! computes on flex: there these types have no values, so the GPU paths compile and never run,
//! and burn's wgpu backend stays out of the page.

#[cfg(not(target_arch = "wasm32"))]
mod desktop {
    use burn::tensor::Device;
    use burn::tensor::wgpu::wgpu;
    use egui::TextureId;

    pub use crate::gpu::TensorToTexture;
    pub use eframe::egui_wgpu::RenderState;

    /// A texture on the shared wgpu device (Rgba8Unorm, TEXTURE_BINDING).
    pub type GpuTexture = wgpu::Texture;

    /// eframe's wgpu state, when it draws through wgpu.
    pub fn render_state(cc: &eframe::CreationContext<'_>) -> Option<RenderState> {
        cc.wgpu_render_state.clone()
    }

    /// Whether eframe's adapter is a GPU, not a CPU-type one (lavapipe).
    pub fn draws_on_gpu(rs: &RenderState) -> bool {
        !matches!(rs.adapter.get_info().device_type, wgpu::DeviceType::Cpu)
    }

    /// Whether eframe draws through OpenGL, where burn's wgpu backend hung
    /// ([`crate::device::computes_on`]): the app does not compute there.
    pub fn draws_through_opengl(rs: &RenderState) -> bool {
        !crate::device::computes_on(rs.adapter.get_info().backend)
    }

    /// The adapter's name and type, for the status line.
    pub fn adapter_label(rs: &RenderState) -> String {
        let info = rs.adapter.get_info();
        format!("{} ({:?})", info.name, info.device_type)
    }

    /// burn's device on eframe's wgpu device, and the shader that writes textures from tensors.
    pub fn share(rs: &RenderState) -> crate::Result<(Device, TensorToTexture)> {
        let device = crate::gpu::share_with_burn(&rs.instance, &rs.adapter, &rs.device, &rs.queue)?;
        Ok((device, TensorToTexture::new(&rs.device, &rs.queue)))
    }

    /// Registers a texture with egui's renderer.
    pub fn register(rs: &RenderState, texture: &GpuTexture) -> TextureId {
        let view = texture.create_view(&Default::default());
        rs.renderer
            .write()
            .register_native_texture(&rs.device, &view, wgpu::FilterMode::Nearest)
    }

    /// Frees a texture registered with [`register`].
    pub fn free(rs: &RenderState, id: TextureId) {
        rs.renderer.write().free_texture(&id);
    }

    /// The texture's width and height in pixels.
    pub fn texture_size(texture: &GpuTexture) -> [usize; 2] {
        [texture.width() as usize, texture.height() as usize]
    }

    /// Frees the texture's memory now.
    pub fn destroy(texture: &GpuTexture) {
        texture.destroy();
    }
}
#[cfg(not(target_arch = "wasm32"))]
pub use desktop::*;

#[cfg(target_arch = "wasm32")]
mod page {
    use burn::tensor::{Device, Tensor};
    use egui::TextureId;

    /// No wgpu renderer in the page (egui_glow draws it).
    pub enum RenderState {}
    /// No texture shader in the page.
    pub enum TensorToTexture {}
    /// No GPU textures in the page.
    pub enum GpuTexture {}

    impl TensorToTexture {
        /// Never called: there is no value of this type.
        pub fn render(
            &self,
            _x: &Tensor<4>,
            _i: usize,
            _lo: f32,
            _hi: f32,
        ) -> crate::Result<GpuTexture> {
            match *self {}
        }
    }

    pub fn render_state(_cc: &eframe::CreationContext<'_>) -> Option<RenderState> {
        None
    }
    pub fn draws_on_gpu(rs: &RenderState) -> bool {
        match *rs {}
    }
    pub fn draws_through_opengl(rs: &RenderState) -> bool {
        match *rs {}
    }
    pub fn adapter_label(rs: &RenderState) -> String {
        match *rs {}
    }
    pub fn share(rs: &RenderState) -> crate::Result<(Device, TensorToTexture)> {
        match *rs {}
    }
    pub fn register(rs: &RenderState, _texture: &GpuTexture) -> TextureId {
        match *rs {}
    }
    pub fn free(rs: &RenderState, _id: TextureId) {
        match *rs {}
    }
    pub fn texture_size(texture: &GpuTexture) -> [usize; 2] {
        match *texture {}
    }
    pub fn destroy(texture: &GpuTexture) {
        match *texture {}
    }
}
#[cfg(target_arch = "wasm32")]
pub use page::*;
