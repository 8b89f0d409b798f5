//! Tensor → Rgba8 texture on the GPU (`shaders/tensor_to_rgba.wgsl`).

use burn::backend::wgpu::{AutoCompiler, CubeBackend, WgpuSetup};
use burn::tensor::wgpu::wgpu;
use burn::tensor::{Device, Tensor};
use cubecl_wgpu::WgpuServer;

use crate::error::{DiffError, Result};

const SHADER: &str = include_str!("../../shaders/tensor_to_rgba.wgsl");

/// The device descriptor burn needs: cubecl sizes its kernels from the adapter's own features
/// and limits, and egui's default descriptor (WebGPU defaults, no features) is too small.
pub fn burn_friendly_device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("difflab shared device"),
        required_features: shared_device_features(adapter.features()),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    }
}

/// The features the shared device asks for, out of the adapter's: all of them (cubecl's WGSL
/// compiler picks f16, int64, subgroups and atomics from the adapter's list), except
/// - `MAPPABLE_PRIMARY_BUFFERS`, which makes every buffer mappable and slow on discrete GPUs
///   (cubecl leaves it out of its own devices too), and
/// - wgpu's experimental features (mesh shaders, ray tracing, cooperative matrices): asking for
///   one without `ExperimentalFeatures::enabled()` fails the device's creation, and so the app's
///   start, on every GPU whose driver offers them (an NVIDIA H200 did); nothing difflab or
///   cubecl's WGSL path runs uses them.
pub fn shared_device_features(adapter_features: wgpu::Features) -> wgpu::Features {
    adapter_features
        - wgpu::Features::MAPPABLE_PRIMARY_BUFFERS
        - wgpu::Features::all_experimental_mask()
}

/// Registers an existing wgpu device (eframe's) with burn and returns the burn device that
/// computes on it. Call it once per device.
pub fn share_with_burn(
    instance: &wgpu::Instance,
    adapter: &wgpu::Adapter,
    device: &wgpu::Device,
    queue: &wgpu::Queue,
) -> Result<Device> {
    Device::wgpu_options()
        .setup(WgpuSetup {
            instance: instance.clone(),
            adapter: adapter.clone(),
            device: device.clone(),
            queue: queue.clone(),
            backend: adapter.get_info().backend,
        })
        .init()
        .map_err(|e| DiffError::Backend(format!("cannot run burn on the shared wgpu device: {e}")))
}

/// Layout of the shader's uniform block (see the WGSL `Params`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    base: u32,
    stride_c: u32,
    stride_h: u32,
    stride_w: u32,
    channels: u32,
    width: u32,
    height: u32,
    _pad: u32,
    lo: f32,
    hi: f32,
    _pad2: [f32; 2],
}

/// The compute pipeline that writes a tensor into a texture.
pub struct TensorToTexture {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl TensorToTexture {
    /// Builds the pipeline on `device` (the one burn computes on).
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("tensor_to_rgba"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("tensor_to_rgba"),
            entries: &[
                entry(
                    0,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(
                    1,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(
                    2,
                    wgpu::BindingType::StorageTexture {
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        format: wgpu::TextureFormat::Rgba8Unorm,
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                ),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("tensor_to_rgba"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("tensor_to_rgba"),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self {
            device: device.clone(),
            queue: queue.clone(),
            layout,
            pipeline,
        }
    }

    /// Writes batch item `item` of `tensor` ([B, C, H, W], C = 1 or 3, on the wgpu device this
    /// pipeline was built on) into a new W×H Rgba8Unorm texture, mapping [lo, hi] to [0, 255].
    /// Reads the tensor's own strides, so channels-last layouts draw correctly.
    pub fn render(
        &self,
        tensor: &Tensor<4>,
        item: usize,
        lo: f32,
        hi: f32,
    ) -> Result<wgpu::Texture> {
        let [b, c, h, w] = tensor.dims();
        if item >= b
            || !(c == 1 || c == 3)
            || hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater)
        {
            return Err(DiffError::invalid(format!(
                "cannot draw item {item} of a tensor of shape {:?} with range [{lo}, {hi}]",
                [b, c, h, w]
            )));
        }
        let backend = |e: &dyn std::fmt::Debug| DiffError::Backend(format!("{e:?}"));
        // Fusion handle → the CubeCL tensor (runs any pending fused ops) → its wgpu buffer.
        let fused = tensor
            .clone()
            .try_into_primitive::<burn::backend::Wgpu>()
            .map_err(|e| backend(&e))?;
        let cube = fused
            .client
            .clone()
            .resolve_tensor_float::<CubeBackend>(fused);
        let strides: Vec<usize> = cube.meta.strides().iter().copied().collect();
        let resource = cube
            .client
            .get_resource::<WgpuServer<AutoCompiler>>(cube.handle.clone())
            .map_err(|e| backend(&e))?;
        // Everything burn queued must reach the queue before our pass.
        cube.client.flush().map_err(|e| backend(&e))?;
        let res = resource.resource();

        let align = u64::from(self.device.limits().min_storage_buffer_offset_alignment);
        let bind_offset = res.offset - res.offset % align;
        let lead = res.offset - bind_offset;
        let params = Params {
            base: u32::try_from(lead / 4 + (item * strides[0]) as u64)
                .map_err(|_| DiffError::Backend("tensor too large to draw".into()))?,
            stride_c: strides[1] as u32,
            stride_h: strides[2] as u32,
            stride_w: strides[3] as u32,
            channels: c as u32,
            width: w as u32,
            height: h as u32,
            _pad: 0,
            lo,
            hi,
            _pad2: [0.0; 2],
        };
        let uniform = wgpu::util::DeviceExt::create_buffer_init(
            &self.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("tensor_to_rgba params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let texture = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("tensor image"),
            size: wgpu::Extent3d {
                width: w as u32,
                height: h as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("tensor_to_rgba"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &res.buffer,
                        offset: bind_offset,
                        size: std::num::NonZeroU64::new(lead + res.size),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
            ],
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tensor_to_rgba"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("tensor_to_rgba"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups((w as u32).div_ceil(8), (h as u32).div_ceil(8), 1);
        }
        self.queue.submit([encoder.finish()]);
        // `resource` and `cube` (holding the buffer) drop only now, after the submit.
        drop(resource);
        drop(cube);
        Ok(texture)
    }

    /// Reads a texture back to the CPU as RGBA8 rows (tests and PNG export only; the display
    /// path never does this).
    pub fn read_texture(&self, texture: &wgpu::Texture) -> Result<Vec<u8>> {
        let (w, h) = (texture.width(), texture.height());
        let row = (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
            * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("texture readback"),
            size: u64::from(row * h),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(row),
                    rows_per_image: Some(h),
                },
            },
            texture.size(),
        );
        self.queue.submit([encoder.finish()]);
        let slice = buffer.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| DiffError::Backend(format!("{e:?}")))?;
        rx.recv()
            .map_err(|e| DiffError::Backend(format!("{e:?}")))?
            .map_err(|e| DiffError::Backend(format!("{e:?}")))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| DiffError::Backend(format!("{e:?}")))?;
        let mut out = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h {
            let start = (y * row) as usize;
            out.extend_from_slice(&data[start..start + (w * 4) as usize]);
        }
        Ok(out)
    }
}
