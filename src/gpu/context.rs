//! The adapter and device: chosen honouring `WGPU_BACKEND` and an adapter-name filter, with the features and
//! limits the plan needs, and the helpers that turn wgpu validation errors into [`Error`]s.

use super::ops::PipelineKey;
use super::shaders::InnerProduct;
use crate::{Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// What to do when there is no adapter.
#[cfg(not(target_arch = "wasm32"))]
const NO_ADAPTER_HINT: &str = "install a Vulkan driver (on Debian/Ubuntu without a GPU: `apt-get install \
    mesa-vulkan-drivers` gives the software device llvmpipe), check WGPU_BACKEND / --adapter, or use --device cpu";
#[cfg(target_arch = "wasm32")]
const NO_ADAPTER_HINT: &str = "this browser offers no WebGPU adapter: try a current Chrome, Edge or Safari, or \
    Firefox with WebGPU enabled, with hardware acceleration on";

/// Which adapter to use.
#[derive(Clone, Debug, Default)]
pub struct AdapterOptions {
    /// Case-insensitive substring of the adapter name, e.g. `llvmpipe`; `None` takes the best adapter.
    pub name_filter: Option<String>,
    /// Backends to search; `None` reads `WGPU_BACKEND` (e.g. `vulkan`, `gl`), else Vulkan, Metal and DX12, then
    /// GL only if those have no adapter.
    pub backends: Option<wgpu::Backends>,
}

/// What the chosen adapter is, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// Whether per-layer GPU timestamps are available (`wgpu::Features::TIMESTAMP_QUERY`).
    pub timestamps: bool,
    /// Whether the WGSL here has `dot4U8Packed` (the `packed_4x8_integer_dot_product` language feature), which
    /// [`InnerProduct::Dot4`] needs.
    pub packed_dot4: bool,
}

impl fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {}, driver {} {})", self.name, self.backend, self.device_type, self.driver, self.driver_info)
    }
}

/// A device and queue on one adapter.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: AdapterInfo,
    /// Why the device was lost, once wgpu's device-lost callback has said so.
    lost: Arc<Mutex<Option<String>>>,
    /// Every pipeline built on this device: compiling one costs 0.1–0.5 s on llvmpipe, so plans share them.
    pipelines: Mutex<HashMap<PipelineKey, (wgpu::BindGroupLayout, wgpu::ComputePipeline)>>,
}

impl GpuContext {
    /// [`GpuContext::new_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(options: &AdapterOptions) -> Result<GpuContext> {
        super::block_on(GpuContext::new_async(options))
    }

    /// The best adapter matching `options` (discrete, then integrated, virtual, CPU), or [`Error::NoAdapter`]. In
    /// the browser this is WebGPU's adapter.
    pub async fn new_async(options: &AdapterOptions) -> Result<GpuContext> {
        let chosen = options.backends.or_else(wgpu::Backends::from_env);
        // Unless told, GL (wgpu's secondary backend) is only opened where no primary backend has an adapter.
        let tries = match chosen {
            Some(backends) => vec![backends],
            None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::SECONDARY],
        };
        let backends = chosen.unwrap_or(wgpu::Backends::PRIMARY | wgpu::Backends::SECONDARY);
        let filter = options.name_filter.as_ref().map(|name| name.to_lowercase());
        let mut found = None;
        for backends in tries {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends,
                ..wgpu::InstanceDescriptor::new_without_display_handle().with_env()
            });
            let adapter = instance
                .enumerate_adapters(backends)
                .await
                .into_iter()
                .filter(|adapter| filter.as_ref().is_none_or(|f| adapter.get_info().name.to_lowercase().contains(f)))
                .min_by_key(|adapter| preference(adapter.get_info().device_type));
            if let Some(adapter) = adapter {
                found = Some((instance, adapter));
                break;
            }
        }
        let (instance, adapter) = found.ok_or_else(|| Error::NoAdapter {
            hint: NO_ADAPTER_HINT,
            filter: match &options.name_filter {
                Some(name) => format!(" whose name contains `{name}` (backends {backends:?})"),
                None => format!(" (backends {backends:?})"),
            },
        })?;
        let name = adapter.get_info().name;
        // Activations live in rgba32uint textures that every op writes as storage: no other layout exists.
        let storage = adapter.get_texture_format_features(wgpu::TextureFormat::Rgba32Uint).allowed_usages;
        if !storage.contains(wgpu::TextureUsages::STORAGE_BINDING) {
            return Err(Error::Gpu(format!(
                "{name} ({}) cannot write rgba32uint storage textures, which hold the engine's activations; \
                 try another backend (WGPU_BACKEND=vulkan) or --device cpu",
                adapter.get_info().backend
            )));
        }
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let packed_dot4 =
            instance.wgsl_language_features().contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
        let adapter_limits = adapter.limits();
        // The defaults, raised to what the adapter allows for the sizes that bound the batch.
        let required_limits = wgpu::Limits {
            max_buffer_size: adapter_limits.max_buffer_size,
            max_storage_buffer_binding_size: adapter_limits.max_storage_buffer_binding_size,
            max_compute_workgroups_per_dimension: adapter_limits.max_compute_workgroups_per_dimension,
            ..wgpu::Limits::default().using_resolution(adapter_limits.clone())
        };
        let required_features = if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mnq-gpu device"),
                required_features,
                required_limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("cannot open a device on {name}: {e}")))?;
        let lost = Arc::new(Mutex::new(None));
        let record = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            let reason = match reason {
                wgpu::DeviceLostReason::Destroyed => "destroyed".to_string(),
                wgpu::DeviceLostReason::Unknown => format!("the driver reported: {message}"),
            };
            *record.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
        });
        let raw = adapter.get_info();
        let info = AdapterInfo {
            name: raw.name,
            backend: raw.backend.to_string(),
            device_type: format!("{:?}", raw.device_type),
            driver: raw.driver,
            driver_info: raw.driver_info,
            timestamps,
            packed_dot4,
        };
        Ok(GpuContext { device, queue, info, lost, pipelines: Mutex::new(HashMap::new()) })
    }

    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    /// The fastest inner product this adapter can run: [`InnerProduct::FASTEST`], or `Unpack` where the WGSL
    /// lacks `dot4U8Packed`.
    pub fn inner_product(&self) -> InnerProduct {
        if self.supports(InnerProduct::FASTEST) {
            InnerProduct::FASTEST
        } else {
            InnerProduct::Unpack
        }
    }

    /// Whether shaders composed with `inner` compile here.
    pub fn supports(&self, inner: InnerProduct) -> bool {
        inner != InnerProduct::Dot4 || self.info.packed_dot4
    }

    /// The device, for callers that build their own pipelines (e.g. the WGSL `requantize` test).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Runs `f` inside validation and out-of-memory error scopes: a wgpu error becomes [`Error::Gpu`] naming `what`.
    pub async fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation = validation.pop().await;
        let out_of_memory = out_of_memory.pop().await;
        match validation.or(out_of_memory) {
            Some(error) => Err(self.error(format!("{what}: {error}"))),
            None => Ok(value),
        }
    }

    /// Why the device was lost, if it was (a driver reset, a removed GPU, `destroy`).
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The pipeline of `key`, built by `build` the first time it is asked for.
    pub(crate) fn pipeline(
        &self,
        key: PipelineKey,
        build: impl FnOnce() -> (wgpu::BindGroupLayout, wgpu::ComputePipeline),
    ) -> (wgpu::BindGroupLayout, wgpu::ComputePipeline) {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pipelines.entry(key).or_insert_with(build).clone()
    }

    /// An error if the device was lost: nothing more can run on it.
    pub fn ensure_alive(&self) -> Result<()> {
        match self.lost() {
            Some(reason) => Err(Error::Gpu(format!("the GPU device was lost ({reason}); nothing more can run on it"))),
            None => Ok(()),
        }
    }

    /// [`Error::Gpu`] with `message`, led by the device loss that explains it, if there was one.
    fn error(&self, message: String) -> Error {
        match self.lost() {
            Some(reason) => Error::Gpu(format!("the GPU device was lost ({reason}); {message}")),
            None => Error::Gpu(message),
        }
    }

    /// Waits for the queue, then copies `size` bytes out of a MAP_READ buffer. Natively this waits on the device
    /// (the browser maps the buffer by itself, resolving the future).
    pub async fn read_buffer(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let slice = buffer.slice(..size);
        let (sender, mapped) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            sender.send(result).ok();
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.error(format!("waiting for the GPU: {e}")))?;
        mapped
            .receive()
            .await
            .ok_or_else(|| self.error("buffer mapping was dropped".into()))?
            .map_err(|e| self.error(format!("cannot map a readback buffer: {e}")))?;
        let bytes =
            slice.get_mapped_range().map_err(|e| self.error(format!("cannot read a mapped buffer: {e}")))?.to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}

/// Keeps Mesa's Vulkan device-selection layer (`VK_LAYER_MESA_device_select`, an implicit layer every Vulkan
/// program loads) from probing for a Wayland session where none exists: it then prints `error: XDG_RUNTIME_DIR
/// is invalid or not set in the environment.` twice on stderr, before any output of ours. The engine picks its
/// adapter itself, so without `XDG_RUNTIME_DIR` this sets `NODEVICE_SELECT=1`, the layer's own switch, unless the
/// user configured the layer (`NODEVICE_SELECT`, `MESA_VK_DEVICE_SELECT`). It changes the environment: call it
/// before starting threads, as `main` does.
pub fn quiet_headless_vulkan() {
    let set = |name: &str| std::env::var_os(name).is_some();
    if !set("XDG_RUNTIME_DIR") && !set("NODEVICE_SELECT") && !set("MESA_VK_DEVICE_SELECT") {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn preference(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}
