//! The GPU display path: burn and egui share one wgpu device, and a compute shader turns a
//! tensor's buffer straight into a texture, with no copy through the CPU.
//!
//! This module knows wgpu and burn's wgpu internals, but not egui: the app registers the
//! textures it makes with its renderer.

mod tensor_texture;

pub use tensor_texture::{
    TensorToTexture, burn_friendly_device_descriptor, share_with_burn, shared_device_features,
};
