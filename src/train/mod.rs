//! Training. Runs on the autodiff device (flex on CPU machines, wgpu on real GPUs).

pub mod toy;
pub mod unet;
