//! Choosing where the tensors live.
//!
//! `auto` uses wgpu when a real GPU adapter is present and burn's pure-Rust CPU backend
//! (`Device::flex()`) otherwise: on a CPU-type adapter such as Mesa's lavapipe, flex is several
//! times faster for convolutions than wgpu emulated on the CPU.

use burn::tensor::Device;
#[cfg(not(target_arch = "wasm32"))]
use burn::tensor::DeviceKind;
#[cfg(not(target_arch = "wasm32"))]
use burn::tensor::wgpu::wgpu;
use serde::{Deserialize, Serialize};

use crate::error::{DiffError, Result};

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// wgpu on a real GPU, flex otherwise.
    #[default]
    Auto,
    /// wgpu on the best adapter, even a CPU-type one (lavapipe).
    Wgpu,
    /// burn's flex backend on the CPU.
    Cpu,
}

/// The backend a [`ComputeDevice`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// burn's wgpu backend.
    Wgpu,
}

/// Whether burn's wgpu backend can compute through `backend`: any but OpenGL. On OpenGL
/// (llvmpipe, on a Linux machine without Vulkan drivers) it hung: a fused matmul's autotune
/// deadlocked the tests, and `sample --model exact` failed after 42 s with wgpu's "Could not
/// lock adapter context". Both the adapter list and the window's renderer ask this.
#[cfg(not(target_arch = "wasm32"))]
pub fn computes_on(backend: wgpu::Backend) -> bool {
    backend != wgpu::Backend::Gl
}

/// A wgpu adapter as seen at start-up.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: wgpu::DeviceType,
    /// Vulkan, Metal, DX12, GL, ...
    pub backend: wgpu::Backend,
}

#[cfg(not(target_arch = "wasm32"))]
impl AdapterSummary {
    /// Whether this is a real GPU (not a CPU emulation).
    pub fn is_gpu(&self) -> bool {
        matches!(
            self.device_type,
            wgpu::DeviceType::DiscreteGpu
                | wgpu::DeviceType::IntegratedGpu
                | wgpu::DeviceType::VirtualGpu
        )
    }

    /// Whether burn's wgpu backend can compute on it ([`computes_on`]).
    pub fn computes(&self) -> bool {
        computes_on(self.backend)
    }

    fn rank(&self) -> u8 {
        match self.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 3,
            wgpu::DeviceType::Other => 4,
        }
    }

    fn device_kind(&self) -> DeviceKind {
        match self.device_type {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(0),
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(0),
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(0),
            wgpu::DeviceType::Cpu => DeviceKind::Cpu,
            wgpu::DeviceType::Other => DeviceKind::DefaultDevice,
        }
    }
}

/// A device to compute on, with a label saying what it is.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    /// The burn device.
    pub device: Device,
    /// The backend.
    pub backend: BackendKind,
    /// e.g. "flex (CPU)" or "wgpu: NVIDIA RTX 4090 (DiscreteGpu, Vulkan)".
    pub label: String,
    /// A real GPU (not flex, not a CPU-type wgpu adapter such as lavapipe).
    pub on_gpu: bool,
}

impl ComputeDevice {
    /// burn's flex backend.
    pub fn flex() -> Self {
        Self {
            device: Device::flex(),
            backend: BackendKind::Flex,
            label: "flex (CPU)".into(),
            on_gpu: false,
        }
    }
}

/// The wgpu adapters on this machine, best first (discrete GPUs first, CPU-type last).
#[cfg(not(target_arch = "wasm32"))]
pub fn wgpu_adapters() -> Vec<AdapterSummary> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let mut out: Vec<AdapterSummary> = adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                name: info.name,
                device_type: info.device_type,
                backend: info.backend,
            }
        })
        .collect();
    out.sort_by_key(AdapterSummary::rank);
    out
}

#[cfg(not(target_arch = "wasm32"))]
fn wgpu_device(adapter: &AdapterSummary) -> ComputeDevice {
    ComputeDevice {
        device: Device::wgpu(adapter.device_kind()),
        backend: BackendKind::Wgpu,
        label: format!(
            "wgpu: {} ({:?}, {:?})",
            adapter.name, adapter.device_type, adapter.backend
        ),
        on_gpu: adapter.is_gpu(),
    }
}

/// The best adapter burn's wgpu backend computes on (`adapters` best first), or why there is
/// none.
#[cfg(not(target_arch = "wasm32"))]
fn computing_adapter(adapters: &[AdapterSummary]) -> std::result::Result<&AdapterSummary, String> {
    if let Some(best) = adapters.iter().find(|a| a.computes()) {
        return Ok(best);
    }
    if adapters.is_empty() {
        return Err(
            "no wgpu adapter found (install a Vulkan driver, e.g. Debian's \
                    mesa-vulkan-drivers, or use --device cpu)"
                .into(),
        );
    }
    let names: Vec<&str> = adapters.iter().map(|a| a.name.as_str()).collect();
    Err(format!(
        "wgpu found only OpenGL ({}), which burn's wgpu backend hangs on: install a Vulkan \
         driver (e.g. Debian's mesa-vulkan-drivers) or use --device cpu",
        names.join(", ")
    ))
}

/// Resolves a [`DeviceChoice`]. `wgpu` with no adapter it can compute on is an error; `auto`
/// takes a real GPU (not through OpenGL) and otherwise the CPU.
#[cfg(not(target_arch = "wasm32"))]
pub fn select_device(choice: DeviceChoice) -> Result<ComputeDevice> {
    match choice {
        DeviceChoice::Cpu => Ok(ComputeDevice::flex()),
        DeviceChoice::Wgpu => {
            let adapters = wgpu_adapters();
            let best = computing_adapter(&adapters).map_err(DiffError::invalid)?;
            let device = wgpu_device(best);
            probe(&device.device).map_err(|why| {
                DiffError::invalid(format!(
                    "the wgpu adapter {} gave no device ({why}); use --device cpu",
                    best.name
                ))
            })?;
            Ok(device)
        }
        DeviceChoice::Auto => Ok(
            match wgpu_adapters().iter().find(|a| a.is_gpu() && a.computes()) {
                Some(gpu) => {
                    let device = wgpu_device(gpu);
                    match probe(&device.device) {
                        Ok(()) => device,
                        Err(why) => {
                            eprintln!(
                                "difflab: the GPU {} gave no device ({why}); computing on the CPU",
                                gpu.name
                            );
                            ComputeDevice::flex()
                        }
                    }
                }
                None => ComputeDevice::flex(),
            },
        ),
    }
}

/// In the page: WebGPU (burn's wgpu backend on the browser's adapter, brought up by
/// [`init_page_gpu`] before the app starts) where the browser offers it, flex otherwise. `auto`
/// takes WebGPU unless the browser calls its adapter a CPU one; `wgpu` without it is an error.
#[cfg(target_arch = "wasm32")]
pub fn select_device(choice: DeviceChoice) -> Result<ComputeDevice> {
    let gpu = PAGE_GPU
        .with(|g| g.borrow().clone())
        .unwrap_or_else(|| Err("the page did not ask the browser for WebGPU".into()));
    match (choice, gpu) {
        (DeviceChoice::Wgpu, Ok(gpu)) => Ok(gpu),
        (DeviceChoice::Wgpu, Err(why)) => Err(DiffError::invalid(format!(
            "no WebGPU here ({why}): computing on the CPU"
        ))),
        (DeviceChoice::Auto, Ok(gpu)) if gpu.on_gpu => Ok(gpu),
        (DeviceChoice::Cpu | DeviceChoice::Auto, _) => Ok(ComputeDevice::flex()),
    }
}

#[cfg(target_arch = "wasm32")]
thread_local! {
    /// The page's WebGPU device, or why there is none ([`init_page_gpu`]).
    static PAGE_GPU: std::cell::RefCell<Option<std::result::Result<ComputeDevice, String>>> =
        const { std::cell::RefCell::new(None) };
}

/// Asks the browser for WebGPU and brings burn's wgpu runtime up on it (`init_async`: in a
/// browser the device only comes up asynchronously); the page calls this once, before the app
/// starts, and [`select_device`] then finds it. Returns the device's label, or why there is none.
#[cfg(target_arch = "wasm32")]
pub async fn init_page_gpu() -> std::result::Result<String, String> {
    let outcome = page_gpu().await;
    PAGE_GPU.with(|g| *g.borrow_mut() = Some(outcome.clone()));
    outcome.map(|d| d.label)
}

#[cfg(target_arch = "wasm32")]
async fn page_gpu() -> std::result::Result<ComputeDevice, String> {
    use burn::tensor::wgpu::wgpu;
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into());
    let offered = navigator
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()))
        .is_ok_and(|gpu| !gpu.is_undefined() && !gpu.is_null());
    if !offered {
        return Err("this browser offers no WebGPU".into());
    }
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|e| format!("WebGPU gave no device: {e}"))?;
    let info = setup.adapter.get_info();
    let name = [
        info.name.as_str(),
        info.driver.as_str(),
        info.driver_info.as_str(),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("the browser's adapter")
    .to_string();
    Ok(ComputeDevice {
        device,
        backend: BackendKind::Wgpu,
        label: format!("wgpu: WebGPU, {name} ({:?})", info.device_type),
        on_gpu: info.device_type != wgpu::DeviceType::Cpu,
    })
}

/// Brings a wgpu device up and reads one value back, catching the panic burn raises when the
/// adapter gives no device ("Unable to acquire wgpu device": a broken driver, or a DX12
/// adapter that wine or a virtual machine lists but cannot open). The panic hook is silenced
/// meanwhile, so the user sees one line, not a panic message.
#[cfg(not(target_arch = "wasm32"))]
fn probe(device: &Device) -> std::result::Result<(), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let t = burn::tensor::Tensor::<1>::from_floats([1.5f32], device);
        t.into_data().try_to_vec::<f32>().ok()
    }));
    std::panic::set_hook(hook);
    match outcome {
        Ok(Some(v)) if v == [1.5] => Ok(()),
        Ok(v) => Err(format!("a value read back as {v:?}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
            .unwrap_or_else(|| "it panicked".into())
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn adapter(
        name: &str,
        device_type: wgpu::DeviceType,
        backend: wgpu::Backend,
    ) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            device_type,
            backend,
        }
    }

    #[test]
    fn wgpu_passes_over_opengl_adapters_and_says_so_when_only_they_are_left() {
        let gl = adapter(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Gl,
        );
        let vk = adapter(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Vulkan,
        );
        let gpu_gl = adapter(
            "Intel(R) UHD",
            wgpu::DeviceType::IntegratedGpu,
            wgpu::Backend::Gl,
        );
        // Lavapipe on Vulkan beside llvmpipe on OpenGL: Vulkan, whichever is listed first.
        let both = [gl.clone(), vk.clone()];
        assert_eq!(
            computing_adapter(&both).unwrap().backend,
            wgpu::Backend::Vulkan
        );
        // OpenGL alone: a one-line error naming the adapters, not a hang.
        let only_gl = [gpu_gl.clone(), gl.clone()];
        let why = computing_adapter(&only_gl).unwrap_err();
        assert!(
            why.starts_with("wgpu found only OpenGL (Intel(R) UHD, llvmpipe")
                && why.contains("--device cpu")
                && !why.contains('\n'),
            "{why}"
        );
        assert!(
            computing_adapter(&[])
                .unwrap_err()
                .starts_with("no wgpu adapter found")
        );
        // `auto`'s test: a GPU through OpenGL does not count.
        assert!(!gpu_gl.computes() && gpu_gl.is_gpu());
        assert!(vk.computes() && !vk.is_gpu());
    }
}
