//! Label, annotation and resource names that NVIDIA's GPU Feature
//! Discovery, NFD, the GPU Operator, RKE2 and Kubernetes put on objects.
//! The labels on the objects we create are in [`crate::objects`].

/// The full-GPU extended resource the NVIDIA device plugin advertises.
pub const RESOURCE_GPU: &str = "nvidia.com/gpu";
/// Time-sliced / MPS shared GPUs renamed by the device plugin.
pub const RESOURCE_GPU_SHARED: &str = "nvidia.com/gpu.shared";
/// MIG resources under the mixed strategy: `nvidia.com/mig-1g.10gb`.
pub const RESOURCE_MIG_PREFIX: &str = "nvidia.com/mig-";

pub const GPU_PRESENT: &str = "nvidia.com/gpu.present";
pub const GPU_PRODUCT: &str = "nvidia.com/gpu.product";
pub const GPU_COUNT: &str = "nvidia.com/gpu.count";
pub const GPU_MEMORY: &str = "nvidia.com/gpu.memory";
pub const GPU_FAMILY: &str = "nvidia.com/gpu.family";
pub const GPU_REPLICAS: &str = "nvidia.com/gpu.replicas";
pub const MIG_STRATEGY: &str = "nvidia.com/mig.strategy";
pub const MIG_CONFIG: &str = "nvidia.com/mig.config";
/// The MIG manager's progress: `pending`, `rebooting`, `success`, `failed`.
pub const MIG_CONFIG_STATE: &str = "nvidia.com/mig.config.state";
/// GFD: `none`, `time-slicing` or `mps`.
pub const GPU_SHARING_STRATEGY: &str = "nvidia.com/gpu.sharing-strategy";
/// The device plugin config a node selects (the chart's `devicePlugin.config`).
pub const DEVICE_PLUGIN_CONFIG: &str = "nvidia.com/device-plugin.config";
/// GFD: the node's GPUs can run MPS (`true` only under the MPS strategy).
pub const MPS_CAPABLE: &str = "nvidia.com/mps.capable";
/// Operand deploy labels: `nvidia.com/gpu.deploy.<operand>`.
pub const DEPLOY_PREFIX: &str = "nvidia.com/gpu.deploy.";
pub const MIG_CAPABLE: &str = "nvidia.com/mig.capable";
pub const DRIVER_FULL: &str = "nvidia.com/cuda.driver-version.full";
pub const DRIVER_MAJOR: &str = "nvidia.com/cuda.driver-version.major";
pub const DRIVER_MINOR: &str = "nvidia.com/cuda.driver-version.minor";
pub const DRIVER_REVISION: &str = "nvidia.com/cuda.driver-version.revision";
/// Deprecated GFD driver labels, still set.
pub const DRIVER_MAJOR_OLD: &str = "nvidia.com/cuda.driver.major";
pub const DRIVER_MINOR_OLD: &str = "nvidia.com/cuda.driver.minor";
pub const DRIVER_REV_OLD: &str = "nvidia.com/cuda.driver.rev";
pub const CUDA_RUNTIME_FULL: &str = "nvidia.com/cuda.runtime-version.full";
/// Written by k8s-driver-manager when the host has a driver already.
pub const DEPLOY_DRIVER: &str = "nvidia.com/gpu.deploy.driver";
/// Its value when the host has a driver (the operator deploys none).
pub const DRIVER_PRE_INSTALLED: &str = "pre-installed";
pub const DEPLOY_OPERANDS: &str = "nvidia.com/gpu.deploy.operands";
/// NFD's label for a PCI device of vendor 0x10de (NVIDIA).
pub const NFD_PCI_NVIDIA: &str = "feature.node.kubernetes.io/pci-10de.present";
/// NFD's os-release labels (the driver image's OS tag).
pub const NFD_OS_ID: &str = "feature.node.kubernetes.io/system-os_release.ID";
pub const NFD_OS_VERSION_ID: &str = "feature.node.kubernetes.io/system-os_release.VERSION_ID";
/// NFD's older per-class form.
pub const NFD_PCI_NVIDIA_PREFIX: &str = "feature.node.kubernetes.io/pci-";

pub const ROLE_CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
pub const ROLE_MASTER: &str = "node-role.kubernetes.io/master";
pub const ROLE_ETCD: &str = "node-role.kubernetes.io/etcd";

pub const PSA_ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// Taint key the GPU Operator docs and most clusters use for GPU nodes.
pub const TAINT_GPU: &str = "nvidia.com/gpu";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
