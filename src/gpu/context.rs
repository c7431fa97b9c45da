//! The adapter and device: chosen honouring `WGPU_BACKEND` and an adapter-name filter, with the features and
//! limits the plan needs, and the helpers that turn wgpu validation errors into [`Error`]s.

use crate::{Error, Result};
use std::fmt;

/// Which adapter to use.
#[derive(Clone, Debug, Default)]
pub struct AdapterOptions {
    /// Case-insensitive substring of the adapter name, e.g. `llvmpipe`; `None` takes the best adapter.
    pub name_filter: Option<String>,
    /// Backends to search; `None` reads `WGPU_BACKEND` (e.g. `vulkan`), else all.
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
}

impl GpuContext {
    /// The best adapter matching `options` (discrete, then integrated, virtual, CPU), or [`Error::NoAdapter`].
    pub fn new(options: &AdapterOptions) -> Result<GpuContext> {
        let backends = options.backends.or_else(wgpu::Backends::from_env).unwrap_or(wgpu::Backends::all());
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle().with_env()
        });
        let filter = options.name_filter.as_ref().map(|name| name.to_lowercase());
        let adapter = pollster::block_on(instance.enumerate_adapters(backends))
            .into_iter()
            .filter(|adapter| filter.as_ref().is_none_or(|f| adapter.get_info().name.to_lowercase().contains(f)))
            .min_by_key(|adapter| preference(adapter.get_info().device_type))
            .ok_or_else(|| Error::NoAdapter {
                filter: match &options.name_filter {
                    Some(name) => format!(" whose name contains `{name}` (backends {backends:?})"),
                    None => format!(" (backends {backends:?})"),
                },
            })?;
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let adapter_limits = adapter.limits();
        // The defaults, raised to what the adapter allows for the sizes that bound the batch.
        let required_limits = wgpu::Limits {
            max_buffer_size: adapter_limits.max_buffer_size,
            max_storage_buffer_binding_size: adapter_limits.max_storage_buffer_binding_size,
            max_compute_workgroups_per_dimension: adapter_limits.max_compute_workgroups_per_dimension,
            ..wgpu::Limits::default().using_resolution(adapter_limits.clone())
        };
        let required_features = if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("mnq-gpu device"),
            required_features,
            required_limits,
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("cannot open a device on {}: {e}", adapter.get_info().name)))?;
        let raw = adapter.get_info();
        let info = AdapterInfo {
            name: raw.name,
            backend: raw.backend.to_string(),
            device_type: format!("{:?}", raw.device_type),
            driver: raw.driver,
            driver_info: raw.driver_info,
            timestamps,
        };
        Ok(GpuContext { device, queue, info })
    }

    pub fn info(&self) -> &AdapterInfo {
        &self.info
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
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation = pollster::block_on(validation.pop());
        let out_of_memory = pollster::block_on(out_of_memory.pop());
        match validation.or(out_of_memory) {
            Some(error) => Err(Error::Gpu(format!("{what}: {error}"))),
            None => Ok(value),
        }
    }

    /// Waits for the queue, then copies `size` bytes out of a MAP_READ buffer.
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let slice = buffer.slice(..size);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        receiver
            .recv()
            .map_err(|_| Error::Gpu("buffer mapping was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("cannot map a readback buffer: {e}")))?;
        let bytes =
            slice.get_mapped_range().map_err(|e| Error::Gpu(format!("cannot read a mapped buffer: {e}")))?.to_vec();
        buffer.unmap();
        Ok(bytes)
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
